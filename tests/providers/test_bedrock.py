"""AWS Bedrock through the gateway: SigV4-signed Converse and ConverseStream (AWS event-stream
framing), tools, usage, errors, and Bedrock API keys; callers are the official SDKs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from tests.fakes.bedrock_upstream import ACCESS_KEY, API_KEY, SECRET_KEY, BedrockFake, start_bedrock_fake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.providers.bedrock import translate

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
MSG = [{"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
async def bedrock() -> AsyncIterator[BedrockFake]:
    fake = await start_bedrock_fake(region="eu-west-1")
    yield fake
    await fake.close()


@pytest.fixture(scope="module", params=["aiohttp", "pyreqwest"])  # both upstream clients read the event stream
async def gw(bedrock: BedrockFake, request: pytest.FixtureRequest) -> AsyncIterator[RunningGateway]:
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    mp.setenv("AWS_SESSION_TOKEN", "session-token-fake")
    mp.setenv("AWS_CONFIG_FILE", "/nonexistent")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    config = f"""
server: {{upstream_client: {request.param}}}
models:
  - name: br
    deployments: [{{provider: bedrock, region: eu-west-1, base_url: "{bedrock.url}", model: "{MODEL_ID}"}}]
  - name: br-key
    deployments: [{{provider: bedrock, region: eu-west-1, base_url: "{bedrock.url}", model: "{MODEL_ID}",
                   api_key: "${{T_BR:-{API_KEY}}}"}}]
  - name: wrong-region
    deployments: [{{provider: bedrock, region: us-east-1, base_url: "{bedrock.url}", model: "{MODEL_ID}"}}]
"""
    async with running_gateway(config) as running:
        yield running
    mp.undo()


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


async def test_signed_converse(gw: RunningGateway, bedrock: BedrockFake) -> None:
    reply = await client(gw).chat.completions.create(
        model="br",
        messages=[{"role": "system", "content": "sys"}, *MSG],
        max_tokens=30,
        temperature=0.2,  # type: ignore[list-item]
    )
    assert reply.choices[0].message.content == "echo: hello there" and reply.model == "br"
    assert reply.usage is not None and reply.usage.prompt_tokens == 3 and reply.usage.completion_tokens == 3
    sent = bedrock.last
    assert sent.path == f"/model/{MODEL_ID}/converse" and sent.headers["x-amz-security-token"] == "session-token-fake"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert sent.body["system"] == [{"text": "sys"}]
    assert sent.body["inferenceConfig"] == {"maxTokens": 30, "temperature": 0.2}


async def test_converse_stream_event_frames(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(
        model="br",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_tools_plain_and_streamed(gw: RunningGateway, bedrock: BedrockFake) -> None:
    first = await client(gw).chat.completions.create(model="br", messages=MSG, tools=TOOLS)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"arg": "x"}
    messages = [*MSG, first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "21 degrees"}]  # fmt: skip
    second = await client(gw).chat.completions.create(model="br", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "echo: hello there"
    assert bedrock.last.body["messages"][-1]["content"][0]["toolResult"]["toolUseId"] == call.id
    stream = await client(gw).chat.completions.create(model="br", messages=MSG, tools=TOOLS, stream=True)  # type: ignore[arg-type]
    deltas = [tc for c in [c async for c in stream] if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {"arg": "x"}


async def test_api_key_and_anthropic_client(gw: RunningGateway, bedrock: BedrockFake) -> None:
    message = await anthropic.AsyncAnthropic(base_url=gw.url, api_key="x", max_retries=0).messages.create(
        model="br-key", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]
    assert bedrock.last.headers["authorization"] == f"Bearer {API_KEY}"


async def test_errors(gw: RunningGateway, bedrock: BedrockFake) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await client(gw).chat.completions.create(model="wrong-region", messages=MSG)  # type: ignore[arg-type]
    assert info.value.status_code == 502  # the gateway's credentials are wrong: not the client's fault
    bedrock.queue_modes("error_429")
    with pytest.raises(openai.RateLimitError):
        await client(gw).chat.completions.create(model="br", messages=MSG)  # type: ignore[arg-type]
    bedrock.queue_modes("stream_exception")
    with pytest.raises(openai.APIError) as streamed:
        stream = await client(gw).chat.completions.create(model="br", messages=MSG, stream=True)  # type: ignore[arg-type]
        _ = [c async for c in stream]
    assert "throttlingException" in str(streamed.value)
    with pytest.raises(openai.BadRequestError) as bad:
        await client(gw).chat.completions.create(model="br", messages=MSG, seed=3)  # type: ignore[arg-type]
    assert bad.value.body["param"] == "seed"  # type: ignore[index]


def test_every_chat_field_has_a_bedrock_fate() -> None:
    from typing import get_type_hints

    from openai.types.chat import completion_create_params as occ

    declared = {n for td in (occ.CompletionCreateParamsNonStreaming, occ.CompletionCreateParamsStreaming)
                for n in get_type_hints(td)}  # fmt: skip
    assert declared == set(translate.CHAT_FIELDS)


async def test_a_wrong_secret_fails_the_signature_check(bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "not-the-secret",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    config = f"""
models:
  - name: br
    deployments: [{{provider: bedrock, region: eu-west-1, base_url: "{bedrock.url}", model: "{MODEL_ID}"}}]
"""
    async with running_gateway(config) as other:
        with pytest.raises(openai.APIStatusError) as info:
            await client(other).chat.completions.create(model="br", messages=MSG)  # type: ignore[arg-type]
    assert info.value.status_code == 502
    assert bedrock.last.headers["authorization"].startswith("AWS4-HMAC-SHA256")


def test_translated_request_matches_the_aws_service_model() -> None:
    """The Converse body validates against botocore's own model of the Bedrock runtime API."""
    import botocore.session
    from botocore.validate import ParamValidator

    operation = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")
    body = translate.to_converse({
        "model": "m", "max_tokens": 10, "temperature": 0.5, "top_p": 0.9, "stop": ["x"], "tool_choice": "required",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
                     {"role": "tool", "tool_call_id": "t1", "content": "42"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}],
    })  # fmt: skip
    report = ParamValidator().validate({"modelId": MODEL_ID, **body}, operation.input_shape)
    assert not report.has_errors(), report.generate_report()
