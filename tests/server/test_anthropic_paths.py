"""Anthropic in both directions: the Messages API inbound (official ``anthropic`` client) and an
Anthropic upstream behind the OpenAI edge (official ``openai`` client)."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway

MSG = [{"role": "user", "content": "hello there"}]
SCHEMA = {"type": "object", "properties": {}}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}]
ANTHROPIC_TOOLS = [{"name": "lookup", "description": "look up", "input_schema": {"type": "object", "properties": {}}}]


def oai(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


def ant(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0)


# -- OpenAI client -> gateway -> Anthropic upstream ---------------------------------------------------


async def test_openai_client_reaches_anthropic_upstream(proxy: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    reply = await oai(proxy).chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "be brief"}, *MSG], max_tokens=50
    )
    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    sent = anthropic_fake.last.body
    assert sent["model"] == "claude-3-5-haiku-latest" and sent["system"] and sent["max_tokens"] == 50
    assert anthropic_fake.last.headers["x-api-key"] == "sk-ant-fake"


async def test_anthropic_upstream_streams_and_tools(proxy: RunningGateway) -> None:
    stream = await oai(proxy).chat.completions.create(
        model="claude", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage is not None
    reply = await oai(proxy).chat.completions.create(model="claude", messages=MSG, tools=OPENAI_TOOLS)  # type: ignore[arg-type]
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"arg": "x"}
    assert reply.choices[0].finish_reason == "tool_calls"


async def test_unsupported_parameter_for_anthropic_is_400(proxy: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai(proxy).chat.completions.create(model="claude", messages=MSG, n=2)
    assert info.value.body["param"] == "n"  # type: ignore[index]


async def test_anthropic_upstream_errors(proxy: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.queue_modes("error_429")
    with pytest.raises(openai.RateLimitError) as info:
        await oai(proxy).chat.completions.create(model="claude", messages=MSG)
    assert info.value.response.headers["retry-after"] == "7"
    anthropic_fake.queue_modes("overloaded_529")
    with pytest.raises(openai.APIStatusError) as err:
        await oai(proxy).chat.completions.create(model="claude", messages=MSG)
    assert err.value.status_code == 502
    anthropic_fake.queue_modes("stream_error")
    stream = await oai(proxy).chat.completions.create(model="claude", messages=MSG, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


# -- Anthropic client -> gateway /v1/messages -> any model --------------------------------------------


@pytest.mark.parametrize("model", ["fast", "claude"])
async def test_messages_api_any_model(proxy: RunningGateway, model: str) -> None:
    message = await ant(proxy).messages.create(model=model, max_tokens=64, messages=MSG)  # type: ignore[arg-type]
    assert message.content[0].type == "text" and message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    async with ant(proxy).messages.stream(model=model, max_tokens=64, messages=MSG) as stream:  # type: ignore[arg-type]
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "echo: hello there" and final.usage.output_tokens > 0


async def test_messages_api_tools(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    message = await ant(proxy).messages.create(
        model="fast",
        max_tokens=64,
        messages=MSG,
        tools=ANTHROPIC_TOOLS,  # type: ignore[arg-type]
    )
    block = message.content[-1]
    assert block.type == "tool_use" and block.name == "lookup" and block.input == {"arg": "x"}
    assert message.stop_reason == "tool_use"
    assert openai_fake.last.body["tools"][0]["function"]["name"] == "lookup"
    follow_up = [
        *MSG,
        {"role": "assistant", "content": [{"type": "tool_use", "id": block.id, "name": "lookup", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "42"}]},
    ]
    answer = await ant(proxy).messages.create(model="fast", max_tokens=64, messages=follow_up, tools=ANTHROPIC_TOOLS)  # type: ignore[arg-type]
    assert answer.content[0].type == "text"
    sent = openai_fake.last.body["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == block.id


async def test_messages_api_errors_in_anthropic_format(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        await ant(proxy).messages.create(model="nope", max_tokens=10, messages=MSG)  # type: ignore[arg-type]
    assert nf.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        await ant(proxy).messages.create(model="fast", max_tokens=10, messages=[])
    openai_fake.queue_modes("error_429")
    with pytest.raises(anthropic.RateLimitError) as rl:
        await ant(proxy).messages.create(model="fast", max_tokens=10, messages=MSG)  # type: ignore[arg-type]
    assert rl.value.response.headers["retry-after"] == "7"
