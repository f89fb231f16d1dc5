"""The OpenAI edge in front of an OpenAI-compatible upstream, called with the official ``openai`` client."""

from __future__ import annotations

import asyncio
import base64
import json
import struct

import openai
import pytest
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway

MSG = [{"role": "user", "content": "hello there"}]


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


async def test_chat_round_trip_swaps_model_and_authenticates(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    raw = await client(proxy).chat.completions.with_raw_response.create(model="fast", messages=MSG)
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert raw.headers["x-tokenomy-model"] == "fast"
    assert raw.headers["x-request-id"].startswith("req_")
    sent = openai_fake.last
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.headers["authorization"] == "Bearer sk-fake-openai"


async def test_parameters_are_carried_through(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    reply = await client(proxy).chat.completions.create(
        model="fast",
        messages=MSG,
        n=2,
        stop=["\n"],
        seed=7,
        temperature=0.2,
        max_completion_tokens=20,
        user="u-1",
        metadata={"task": "greet"},
        logprobs=True,
        top_logprobs=2,
        extra_body={"brand_new_param": {"x": 1}},
    )
    assert len(reply.choices) == 2
    assert reply.choices[0].logprobs is not None and reply.choices[0].logprobs.content
    body = openai_fake.last.body
    for key, value in {
        "n": 2,
        "stop": ["\n"],
        "seed": 7,
        "temperature": 0.2,
        "max_completion_tokens": 20,
        "user": "u-1",
        "metadata": {"task": "greet"},
        "top_logprobs": 2,
        "brand_new_param": {"x": 1},
    }.items():
        assert body[key] == value, key


async def test_json_mode_and_schema(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    reply = await client(proxy).chat.completions.create(
        model="fast", messages=MSG, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    await client(proxy).chat.completions.create(model="fast", messages=MSG, response_format=schema)  # type: ignore[arg-type]
    assert openai_fake.last.body["response_format"] == schema


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


async def test_tools_whole_and_streamed(proxy: RunningGateway) -> None:
    reply = await client(proxy).chat.completions.create(model="fast", messages=MSG, tools=TOOLS)  # type: ignore[arg-type]
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"arg": "x"}
    stream = await client(proxy).chat.completions.create(model="fast", messages=MSG, tools=TOOLS, stream=True)  # type: ignore[arg-type]
    args, names = "", []
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            args += (tc.function.arguments or "") if tc.function else ""
    assert names == ["lookup"] and json.loads(args) == {"arg": "x"}


async def test_stream_usage_only_when_asked(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    stream = await client(proxy).chat.completions.create(model="fast", messages=MSG, stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert all(c.usage is None for c in chunks)
    # the gateway still asked upstream for usage, to count tokens
    assert openai_fake.last.body["stream_options"] == {"include_usage": True}
    stream = await client(proxy).chat.completions.create(
        model="fast", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_completions_and_embeddings(proxy: RunningGateway) -> None:
    text = await client(proxy).completions.create(model="fast", prompt="say hi", max_tokens=5)
    assert text.choices[0].text
    floats = await client(proxy).embeddings.create(model="embed", input=["a", "b", "c"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1, 2] and len(floats.data[0].embedding) == 8
    packed = await client(proxy).embeddings.create(model="embed", input=["a", "b", "c"], encoding_format="base64")
    raw = base64.b64decode(packed.data[0].embedding)  # type: ignore[arg-type]
    assert list(struct.unpack("<8f", raw)) == pytest.approx(floats.data[0].embedding)
    tokens = await client(proxy).embeddings.create(model="embed", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("error_500", 502, "upstream_error"),
        ("error_400", 400, "upstream_invalid_request"),
        ("bad_json", 502, "upstream_bad_stream"),
        ("cut_stream", 502, "upstream_connection_error"),
    ],
)
async def test_upstream_errors_map_cleanly(
    proxy: RunningGateway, openai_fake: OpenAIFake, mode: str, status: int, code: str
) -> None:
    openai_fake.queue_modes(mode)
    with pytest.raises(openai.APIStatusError) as info:
        await client(proxy).chat.completions.create(model="fast", messages=MSG)
    assert info.value.status_code == status
    assert info.value.body["code"] == code  # type: ignore[index]
    assert "Traceback" not in str(info.value.body)


async def test_rate_limit_keeps_retry_after(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    openai_fake.queue_modes("error_429")
    with pytest.raises(openai.RateLimitError) as info:
        await client(proxy).chat.completions.create(model="fast", messages=MSG)
    assert info.value.response.headers["retry-after"] == "7"


async def test_timeout_is_504(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    openai_fake.queue_modes("slow")
    with pytest.raises(openai.APIStatusError) as info:
        await client(proxy).chat.completions.create(model="tight", messages=MSG)
    assert info.value.status_code == 504 and info.value.body["code"] == "upstream_timeout"  # type: ignore[index]


@pytest.mark.parametrize("mode", ["malformed_stream", "cut_stream"])
async def test_broken_stream_ends_with_error_event(proxy: RunningGateway, openai_fake: OpenAIFake, mode: str) -> None:
    openai_fake.queue_modes(mode)
    stream = await client(proxy).chat.completions.create(model="fast", messages=MSG, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert received, "the stream started before it broke"
    assert "Upstream" in info.value.message
    # the gateway is still healthy afterwards
    reply = await client(proxy).chat.completions.create(model="fast", messages=MSG)
    assert reply.choices[0].message.content


async def test_client_disconnect_cancels_upstream_stream(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    openai_fake.queue_modes("slow_stream")
    stream = await client(proxy).chat.completions.create(model="fast", messages=MSG, stream=True)
    got = 0
    async for _chunk in stream:
        got += 1
        if got == 3:
            break
    await stream.close()
    assert await openai_fake.wait_disconnects(1, within=5.0)


async def test_client_disconnect_cancels_upstream_request(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    openai_fake.queue_modes("slow")
    task = asyncio.create_task(client(proxy).chat.completions.create(model="fast", messages=MSG))
    await asyncio.sleep(0.3)
    task.cancel()
    assert await openai_fake.wait_disconnects(1, within=5.0, streams=False)


async def test_metrics_count_tokens_and_ttft(proxy: RunningGateway) -> None:
    stream = await client(proxy).chat.completions.create(model="fast", messages=MSG, stream=True)
    [c async for c in stream]
    import aiohttp

    await proxy.flush_ledger()  # token and cost counters are fed by the ledger writer
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/metrics") as resp:
        text = await resp.text()
    assert 'tokenomy_tokens_total{direction="input",model="fast",provider="openai",task="untagged"}' in text
    assert 'tokenomy_cost_usd_total{model="fast",provider="openai",task="untagged"}' in text
    assert 'tokenomy_time_to_first_token_seconds_count{endpoint="chat",model="fast",task="untagged"}' in text
