"""Gemini through the gateway (Generative Language API and Vertex AI paths), called with the official
``openai`` and ``anthropic`` clients: plain, streamed, tools, JSON, embeddings, usage and errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from tests.fakes.gemini_upstream import GeminiFake, start_gemini_fake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.providers.gemini import translate

KEY = "gemini-key-fake"
MSG = [{"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
async def gemini() -> AsyncIterator[GeminiFake]:
    fake = await start_gemini_fake(api_key=KEY, stream_interval=0.01)
    yield fake
    await fake.close()


@pytest.fixture(scope="module", params=["aiohttp", "pyreqwest"])  # both upstream clients
async def gw(
    gemini: GeminiFake, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    mp = pytest.MonkeyPatch()  # a home (cache, ledger) per gateway: the second must not hit the first's cache
    mp.setenv("TOKENOMY_HOME", str(tmp_path_factory.mktemp("home")))
    k = f"${{T_G:-{KEY}}}"
    config = f"""
server: {{upstream_client: {request.param}}}
models:
  - name: gem
    deployments: [{{provider: gemini, base_url: "{gemini.base_url}", model: gemini-2.0-flash, api_key: "{k}"}}]
  - name: vertex
    deployments: [{{provider: gemini, base_url: "{gemini.url}/v1/projects/p1/locations/us-central1",
                   model: gemini-2.0-flash, api_key: "{k}"}}]
  - name: gembed
    deployments: [{{provider: gemini, base_url: "{gemini.base_url}", model: text-embedding-004, api_key: "{k}"}}]
  - name: badkey
    deployments: [{{provider: gemini, base_url: "{gemini.base_url}", model: gemini-2.0-flash, api_key: "${{T_B:-no}}"}}]
"""
    async with running_gateway(config) as running:
        yield running
    mp.undo()


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


async def test_chat(gw: RunningGateway, gemini: GeminiFake) -> None:
    reply = await client(gw).chat.completions.create(
        model="gem",
        messages=[{"role": "system", "content": "sys"}, *MSG],
        max_tokens=20,
        temperature=0.3,  # type: ignore[list-item]
    )
    assert reply.choices[0].message.content == "echo: hello there" and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens == 3 and reply.usage.completion_tokens == 3
    sent = gemini.last
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent" and sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"] == {"parts": [{"text": "sys"}]}
    assert sent.body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 20}


async def test_stream_with_usage(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(
        model="gem",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_tools_round_trip(gw: RunningGateway, gemini: GeminiFake) -> None:
    first = await client(gw).chat.completions.create(model="gem", messages=MSG, tools=TOOLS)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"arg": "x"}
    messages = [*MSG, first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}]  # fmt: skip
    second = await client(gw).chat.completions.create(model="gem", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "echo: hello there"
    parts = gemini.last.body["contents"][-1]["parts"]
    assert parts == [{"functionResponse": {"name": "lookup", "response": {"temp": 21}}}]
    stream = await client(gw).chat.completions.create(model="gem", messages=MSG, tools=TOOLS, stream=True)  # type: ignore[arg-type]
    calls = [tc for c in [c async for c in stream] if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function and calls[0].function.name == "lookup"


async def test_json_schema_and_vertex(gw: RunningGateway, gemini: GeminiFake) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object",
              "properties": {"city": {"type": "string"}}}}}  # fmt: skip
    reply = await client(gw).chat.completions.create(model="vertex", messages=MSG, response_format=schema)  # type: ignore[arg-type]
    assert json.loads(reply.choices[0].message.content or "") == {"city": "hello there"}
    sent = gemini.last
    vertex_path = "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    assert sent.path == vertex_path
    assert sent.headers["authorization"] == f"Bearer {KEY}"


async def test_embeddings(gw: RunningGateway, gemini: GeminiFake) -> None:
    result = await client(gw).embeddings.create(model="gembed", input=["a b", "c"], dimensions=4)
    assert [len(d.embedding) for d in result.data] == [4, 4] and result.model == "gembed"
    assert gemini.last.body["requests"][0]["model"] == "models/text-embedding-004"


async def test_anthropic_client_and_responses_on_gemini(gw: RunningGateway) -> None:
    message = await anthropic.AsyncAnthropic(base_url=gw.url, api_key="x", max_retries=0).messages.create(
        model="gem", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]
    answer = await client(gw).responses.create(model="gem", input="hi")
    assert answer.output_text == "echo: hi"


async def test_errors(gw: RunningGateway, gemini: GeminiFake) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await client(gw).chat.completions.create(model="badkey", messages=MSG)  # type: ignore[arg-type]
    assert info.value.status_code == 400 and "API key not valid" in str(info.value)  # Google's own message kept
    gemini.queue_modes("error_429")
    with pytest.raises(openai.RateLimitError):
        await client(gw).chat.completions.create(model="gem", messages=MSG)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as bad:
        await client(gw).chat.completions.create(model="gem", messages=MSG, logit_bias={"1": 5})  # type: ignore[arg-type]
    assert bad.value.body["param"] == "logit_bias"  # type: ignore[index]


def test_every_chat_field_has_a_gemini_fate() -> None:
    from typing import get_type_hints

    from openai.types.chat import completion_create_params as occ

    declared = {n for td in (occ.CompletionCreateParamsNonStreaming, occ.CompletionCreateParamsStreaming)
                for n in get_type_hints(td)}  # fmt: skip
    assert declared == set(translate.CHAT_FIELDS)
