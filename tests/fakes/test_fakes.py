"""The fakes speak the real wire protocols: the official SDKs (and raw HTTP) accept what they send."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio
from tests.fakes import AnthropicFake, OpenAIFake, embedding_vector, start_anthropic_fake, start_openai_fake

pytestmark = pytest.mark.asyncio

USER: Any = [{"role": "user", "content": "hello world"}]
OAI_TOOLS: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
ANT_TOOLS: Any = [{"name": "lookup", "input_schema": {"type": "object"}}]


@pytest_asyncio.fixture
async def oai() -> AsyncIterator[OpenAIFake]:
    fake = await start_openai_fake(stream_interval=0.05)
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def ant() -> AsyncIterator[AnthropicFake]:
    fake = await start_anthropic_fake()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def oc(oai: OpenAIFake) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=oai.base_url, api_key="k", max_retries=0)
    yield client
    await client.close()


@pytest_asyncio.fixture
async def ac(ant: AnthropicFake) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=ant.base_url, api_key="k", max_retries=0)
    yield client
    await client.close()


async def _raw(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.text()


def _events(text: str) -> list[tuple[str | None, str]]:
    """Parse an SSE body into ``(event, data)`` pairs, asserting the framing is exact."""
    assert text.endswith("\n\n")
    out = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        event = lines[0].removeprefix("event: ") if lines[0].startswith("event: ") else None
        assert lines[-1].startswith("data: ") and len(lines) == (2 if event else 1)
        out.append((event, lines[-1].removeprefix("data: ")))
    return out


# -- OpenAI -----------------------------------------------------------------------------------------------
async def test_chat_completion(oai: OpenAIFake, oc: openai.AsyncOpenAI) -> None:
    r = await oc.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert r.object == "chat.completion" and r.model == "gpt-4o-mini"
    assert r.choices[0].message.content == "echo: hello world" and r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (2, 3, 5)
    path, headers, body = oai.requests[-1]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer k" and body["messages"] == USER


async def test_chat_n_logprobs_json_and_length(oc: openai.AsyncOpenAI) -> None:
    r = await oc.chat.completions.create(
        model="m",
        messages=USER,
        n=2,
        logprobs=True,
        top_logprobs=2,
    )
    assert [c.index for c in r.choices] == [0, 1] and r.usage is not None and r.usage.completion_tokens == 6
    lp = r.choices[1].logprobs
    assert lp is not None and lp.content is not None
    assert "".join(t.token for t in lp.content) == "echo: hello world" and len(lp.content[0].top_logprobs) == 2
    r = await oc.chat.completions.create(model="m", messages=USER, response_format={"type": "json_object"})
    assert json.loads(r.choices[0].message.content or "") == {"echo": "hello world"}
    r = await oc.chat.completions.create(model="m", messages=USER, max_tokens=1)
    assert r.choices[0].message.content == "echo:" and r.choices[0].finish_reason == "length"


async def test_chat_tools_round_trip(oc: openai.AsyncOpenAI) -> None:
    r = await oc.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = (choice.message.tool_calls or [])[0]
    assert call.type == "function" and call.function.name == "lookup" and call.function.arguments == '{"arg": "x"}'
    follow: Any = [
        *USER,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    r = await oc.chat.completions.create(model="m", messages=follow, tools=OAI_TOOLS)
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content == "echo: hello world"


@pytest.mark.parametrize("include_usage", [True, False])
async def test_chat_stream(oc: openai.AsyncOpenAI, include_usage: bool) -> None:
    stream = await oc.chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello world" and len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert usage == [chunks[-1]] and chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 5  # type: ignore[union-attr]
    else:
        assert usage == []


async def test_chat_stream_tool_calls(oc: openai.AsyncOpenAI) -> None:
    stream = await oc.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS, stream=True)
    calls = [c.choices[0].delta.tool_calls for c in [c async for c in stream] if c.choices[0].delta.tool_calls]
    first = calls[0][0]
    assert first.id and first.function and first.function.name == "lookup" and first.function.arguments == ""
    assert len(calls) > 2 and all(c[0].id is None for c in calls[1:])
    assert "".join((c[0].function.arguments or "") for c in calls if c[0].function) == '{"arg": "x"}'
    async with oc.chat.completions.stream(model="m", messages=USER, tools=OAI_TOOLS) as s:
        final = await s.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"arg": "x"}'  # type: ignore[index]


async def test_chat_stream_wire_format(oai: OpenAIFake) -> None:
    body = {"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    status, headers, text = await _raw(f"{oai.base_url}/chat/completions", body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = _events(text)
    assert events[-1] == (None, "[DONE]") and all(e is None for e, _ in events)
    assert [json.loads(d)["object"] for _, d in events[:-1]] == ["chat.completion.chunk"] * (len(events) - 1)


async def test_legacy_completions(oc: openai.AsyncOpenAI) -> None:
    r = await oc.completions.create(model="m", prompt=["a b", "c"], n=2)
    assert r.object == "text_completion" and [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[2].text == "echo: c" and r.usage is not None and r.usage.prompt_tokens == 3
    r = await oc.completions.create(model="m", prompt=[1, 2, 3])
    assert r.choices[0].text == "echo: 1 2 3" and r.usage is not None and r.usage.prompt_tokens == 3
    stream = await oc.completions.create(
        model="m", prompt="hi there", stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: hi there"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_embeddings_float_and_base64(oai: OpenAIFake, oc: openai.AsyncOpenAI) -> None:
    inputs: list[Any] = ["one", ["one", "two words"], [1, 2, 3], [[1, 2], [3]]]
    for inp in inputs:
        r = await oc.embeddings.create(model="e", input=inp, encoding_format="float")
        assert r.object == "list" and all(len(d.embedding) == 8 for d in r.data)
        assert [d.index for d in r.data] == list(range(len(r.data)))
    r = await oc.embeddings.create(model="e", input=["one", "two words"], encoding_format="float")
    assert r.data[0].embedding == embedding_vector("one") and r.usage.prompt_tokens == 3
    assert abs(sum(v * v for v in r.data[0].embedding) - 1) < 1e-5 and r.data[0].embedding != r.data[1].embedding
    decoded = await oc.embeddings.create(model="e", input=["one", "two words"])  # SDK asks base64 and decodes
    assert oai.last.body["encoding_format"] == "base64"
    assert [list(d.embedding) for d in decoded.data] == [d.embedding for d in r.data]
    status, _, text = await _raw(
        f"{oai.base_url}/embeddings", {"model": "e", "input": "one", "encoding_format": "base64"}
    )
    raw = base64.b64decode(json.loads(text)["data"][0]["embedding"])
    assert status == 200 and list(struct.unpack("<8f", raw)) == embedding_vector("one")
    r = await oc.embeddings.create(model="e", input="one", dimensions=20, encoding_format="float")
    assert len(r.data[0].embedding) == 20


async def test_models(oc: openai.AsyncOpenAI) -> None:
    assert "gpt-4o-mini" in [m.id async for m in oc.models.list()]
    assert (await oc.models.retrieve("gpt-4o")).owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        await oc.models.retrieve("nope")


@pytest.mark.parametrize(
    ("mode", "exc", "etype"),
    [
        ("error_429", openai.RateLimitError, "requests"),
        ("error_500", openai.InternalServerError, "server_error"),
        ("error_503", openai.InternalServerError, "server_error"),
        ("error_400", openai.BadRequestError, "invalid_request_error"),
    ],
)
async def test_openai_error_modes(
    oc: openai.AsyncOpenAI, mode: str, exc: type[openai.APIStatusError], etype: str
) -> None:
    for stream in (False, True):
        with pytest.raises(exc) as info:
            await oc.chat.completions.create(
                model="m",
                messages=USER,
                stream=stream,
                extra_headers={"x-fake-mode": mode},
            )
        assert info.value.status_code == int(mode[-3:]) and info.value.type == etype
    if mode == "error_429":
        assert info.value.response.headers["retry-after"] == "7" and info.value.code == "rate_limit_exceeded"
    if mode == "error_400":
        assert info.value.param == "messages"


async def test_openai_slow_then_error(oc: openai.AsyncOpenAI) -> None:
    started = time.perf_counter()
    with pytest.raises(openai.InternalServerError):
        await oc.chat.completions.create(
            model="m", messages=USER, extra_headers={"x-fake-mode": "slow+error_500", "x-fake-delay": "0.3"}
        )
    assert time.perf_counter() - started >= 0.3


async def test_openai_auth_validation_and_mode_precedence() -> None:
    async with await start_openai_fake(api_key="secret", mode="error_429") as fake:
        bad = openai.AsyncOpenAI(base_url=fake.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            await bad.chat.completions.create(model="m", messages=USER)
        assert info.value.code == "invalid_api_key"
        good = openai.AsyncOpenAI(base_url=fake.base_url, api_key="secret", max_retries=0)
        with pytest.raises(openai.RateLimitError):  # the server-wide mode
            await good.chat.completions.create(model="m", messages=USER)
        ok = await good.chat.completions.create(model="m", messages=USER, extra_headers={"x-fake-mode": "ok"})
        assert ok.choices[0].message.content == "echo: hello world"
        fake.mode = "ok"
        fake.queue_modes("error_500")
        with pytest.raises(openai.InternalServerError):
            await good.chat.completions.create(model="m", messages=USER)
        await good.chat.completions.create(model="m", messages=USER)
        with pytest.raises(openai.BadRequestError) as bad_req:
            await good.chat.completions.create(model="m", messages=[])
        assert bad_req.value.param == "messages"
        await bad.close()
        await good.close()


async def test_openai_faults(oai: OpenAIFake, oc: openai.AsyncOpenAI) -> None:
    with pytest.raises(json.JSONDecodeError):
        await oc.chat.completions.create(model="m", messages=USER, extra_headers={"x-fake-mode": "bad_json"})
    for mode, exc in (("malformed_stream", json.JSONDecodeError), ("cut_stream", openai.APIConnectionError)):
        stream = await oc.chat.completions.create(
            model="m",
            messages=USER,
            stream=True,
            extra_headers={"x-fake-mode": mode},
        )
        seen = []
        with pytest.raises(exc):
            async for chunk in stream:
                seen.append(chunk)
        assert len(seen) == 2
    stream = await oc.chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-mode": "no_usage_stream"},
    )
    assert [c async for c in stream if c.usage is not None] == []
    with pytest.raises(openai.APITimeoutError):
        await oc.chat.completions.create(
            model="m",
            messages=USER,
            timeout=0.2,
            extra_headers={"x-fake-mode": "slow", "x-fake-delay": "3"},
        )
    assert await oai.wait_disconnects(1, streams=False) and oai.cancelled_streams == 0


async def test_openai_slow_stream_disconnect_is_observed(oai: OpenAIFake, oc: openai.AsyncOpenAI) -> None:
    stream = await oc.chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        extra_headers={"x-fake-mode": "slow_stream"},
    )
    got = []
    async for chunk in stream:
        got.append(chunk)
        if len(got) == 3:
            break
    await stream.close()
    assert await oai.wait_disconnects(1, within=3.0) and oai.cancelled_streams == 1


# -- Anthropic --------------------------------------------------------------------------------------------
async def test_anthropic_message(ant: AnthropicFake, ac: anthropic.AsyncAnthropic) -> None:
    m = await ac.messages.create(model="claude-x", max_tokens=64, messages=USER, system="be brief")
    assert m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn"
    assert m.content[0].type == "text" and m.content[0].text == "echo: hello world"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (4, 3)
    assert ant.last.path == "/v1/messages" and "anthropic-version" in ant.last.headers
    m = await ac.messages.create(model="c", max_tokens=1, messages=USER)
    assert m.stop_reason == "max_tokens" and m.content[0].text == "echo:"  # type: ignore[union-attr]


async def test_anthropic_headers_and_validation(ant: AnthropicFake) -> None:
    url, ok = f"{ant.url}/v1/messages", {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    status, _, text = await _raw(url, {"model": "c", "max_tokens": 5, "messages": USER}, ok)
    assert status == 200 and json.loads(text)["content"][0]["text"] == "echo: hello world"
    cases = [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "k"}, 400, "invalid_request_error"),
    ]
    for headers, want_status, want_type in cases:
        status, _, text = await _raw(url, {"model": "c", "max_tokens": 5, "messages": USER}, headers)
        assert status == want_status and json.loads(text)["error"]["type"] == want_type
    status, _, text = await _raw(url, {"model": "c", "messages": USER}, ok)
    assert status == 400 and json.loads(text) == {
        "type": "error",
        "request_id": json.loads(text)["request_id"],
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    status, _, text = await _raw(f"{url}/count_tokens", {"model": "c", "messages": USER}, ok)
    assert status == 200 and json.loads(text) == {"input_tokens": 2}


async def test_anthropic_tools_round_trip(ac: anthropic.AsyncAnthropic) -> None:
    m = await ac.messages.create(model="c", max_tokens=64, messages=USER, tools=ANT_TOOLS)
    block = m.content[0]
    assert m.stop_reason == "tool_use" and block.type == "tool_use" and block.name == "lookup"
    assert block.input == {"arg": "x"}
    follow: Any = [
        *USER,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "42"}]},
    ]
    m = await ac.messages.create(model="c", max_tokens=64, messages=follow, tools=ANT_TOOLS)
    assert m.stop_reason == "end_turn" and m.content[0].text == "echo: 42"  # type: ignore[union-attr]


async def test_anthropic_stream(ac: anthropic.AsyncAnthropic) -> None:
    async with ac.messages.stream(model="c", max_tokens=64, messages=USER) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "echo: hello world" and final.usage.output_tokens == 3 and final.stop_reason == "end_turn"
    async with ac.messages.stream(model="c", max_tokens=64, messages=USER, tools=ANT_TOOLS) as s:
        final = await s.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"arg": "x"}  # type: ignore[union-attr]


async def test_anthropic_stream_wire_sequence(ant: AnthropicFake) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "c", "max_tokens": 64, "messages": USER, "stream": True}
    status, resp_headers, text = await _raw(f"{ant.url}/v1/messages", body, headers)
    assert status == 200 and resp_headers["Content-Type"].startswith("text/event-stream")
    events = _events(text)
    names = [e for e, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(json.loads(d)["type"] == e for e, d in events)
    assert json.loads(events[3][1])["delta"] == {"type": "text_delta", "text": "echo:"}
    body["tools"] = ANT_TOOLS
    deltas = [
        json.loads(d)["delta"]
        for e, d in _events((await _raw(f"{ant.url}/v1/messages", body, headers))[2])
        if e == "content_block_delta"
    ]
    assert {d["type"] for d in deltas} == {"input_json_delta"}
    assert json.loads("".join(d["partial_json"] for d in deltas)) == {"arg": "x"}


@pytest.mark.parametrize(
    ("mode", "exc", "etype"),
    [
        ("error_429", anthropic.RateLimitError, "rate_limit_error"),
        ("error_500", anthropic.InternalServerError, "api_error"),
        ("overloaded_529", anthropic.OverloadedError, "overloaded_error"),
        ("error_400", anthropic.BadRequestError, "invalid_request_error"),
    ],
)
async def test_anthropic_error_modes(
    ac: anthropic.AsyncAnthropic, mode: str, exc: type[anthropic.APIStatusError], etype: str
) -> None:
    for stream in (False, True):
        with pytest.raises(exc) as info:
            await ac.messages.create(
                model="c",
                max_tokens=9,
                messages=USER,
                stream=stream,
                extra_headers={"x-fake-mode": mode},
            )
        assert info.value.status_code == int(mode[-3:])
        assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == etype
    if mode == "error_429":
        assert info.value.response.headers["retry-after"] == "7"


async def test_anthropic_faults(ant: AnthropicFake, ac: anthropic.AsyncAnthropic) -> None:
    def create(mode: str, stream: bool = True, **kw: Any) -> Any:
        return ac.messages.create(
            model="c",
            max_tokens=9,
            messages=USER,
            stream=stream,
            extra_headers={"x-fake-mode": mode},
            **kw,
        )

    for mode in ("malformed_stream", "cut_stream", "stream_error"):
        seen: list[str] = []
        try:
            async for event in await create(mode):
                seen.append(event.type)
        except (json.JSONDecodeError, anthropic.APIError) as exc:
            assert mode != "cut_stream" or isinstance(exc, anthropic.APIConnectionError)
        except Exception as exc:  # the SDK lets the HTTP library's protocol error through for a cut stream
            assert mode == "cut_stream" and type(exc).__name__ == "RemoteProtocolError"
        else:
            pytest.fail(f"{mode} did not fail")
        assert seen[:2] == ["message_start", "content_block_start"] and "message_stop" not in seen
    with pytest.raises(anthropic.APITimeoutError):
        await create("slow", stream=False, timeout=0.2)
    assert await ant.wait_disconnects(1, streams=False)
