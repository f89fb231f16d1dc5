"""The Responses API (``/v1/responses``) with the official ``openai`` client as the caller.

``native`` is an OpenAI deployment (the request goes upstream as it is), ``chatted`` the same
fake server told to take chat completions only, ``claude`` an Anthropic deployment: both of the
latter get the translation to chat completions and back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import openai
import pytest
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.keys.record import hash_key

TOOLS = [{"type": "function", "name": "lookup", "description": "find", "parameters": {"type": "object",
          "properties": {"arg": {"type": "string"}}}}]  # fmt: skip


def _config(openai_url: str, anthropic_url: str, path: str) -> str:
    return f"""
auth:
  keys:
    - {{name: a, sha256: "{hash_key("sk-team-a")}", tenant: team-a}}
    - {{name: b, sha256: "{hash_key("sk-team-b")}", tenant: team-b}}
responses: {{path: "{path}"}}
models:
  - name: native
    deployments:
      - {{provider: openai, base_url: "{openai_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}", model: gpt-4o-mini}}
  - name: chatted
    deployments:
      - {{provider: openai, base_url: "{openai_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}", model: gpt-4o-mini,
          responses_api: chat}}
  - name: claude
    deployments:
      - {{provider: anthropic, base_url: "{anthropic_url}", api_key: "${{T_ANT:-{ANTHROPIC_KEY}}}",
          model: claude-3-5-haiku-latest}}
"""


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    path = tmp_path_factory.mktemp("responses") / "responses.db"
    async with running_gateway(_config(openai_fake.base_url, anthropic_fake.base_url, str(path))) as running:
        yield running


def client(gw: RunningGateway, key: str = "sk-team-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=0)


# -- native pass-through ----------------------------------------------------------------------------


async def test_native_create_passes_every_field_through(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    raw = await client(gw).responses.with_raw_response.create(
        model="native",
        input="hello there",
        instructions="be brief",
        max_output_tokens=50,
        extra_body={"x_brand_new": {"k": 1}},
        tools=[{"type": "web_search"}],
        tool_choice="none",  # type: ignore[list-item]
    )
    reply = raw.parse()
    assert reply.output_text == "echo: hello there"
    assert reply.model == "native" and raw.headers["x-tokenomy-model"] == "native"
    assert reply.usage is not None and reply.usage.input_tokens == 4 and reply.usage.output_tokens == 3
    sent = openai_fake.last
    assert sent.path == "/v1/responses" and sent.body["model"] == "gpt-4o-mini"
    assert sent.body["x_brand_new"] == {"k": 1} and sent.body["tools"] == [{"type": "web_search"}]
    assert sent.body["instructions"] == "be brief" and sent.body["input"] == "hello there"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"


async def test_native_stream_passes_events_through(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    stream = await client(gw).responses.create(model="native", input="stream me", stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: stream me"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.model == "native" and final.output_text == text
    assert openai_fake.last.body["stream"] is True


# -- translation to chat completions --------------------------------------------------------------


@pytest.mark.parametrize("model", ["chatted", "claude"])
async def test_translated_create(gw: RunningGateway, model: str) -> None:
    reply = await client(gw).responses.create(model=model, input="hello there", instructions="be brief")
    assert reply.output_text == "echo: hello there" and reply.status == "completed"
    assert reply.model == model and reply.id.startswith("resp_") and reply.instructions == "be brief"
    assert reply.usage is not None and reply.usage.output_tokens == 3
    assert reply.usage.total_tokens == reply.usage.input_tokens + 3


@pytest.mark.parametrize("model", ["chatted", "claude"])
async def test_translated_stream_has_the_responses_events(gw: RunningGateway, model: str) -> None:
    stream = await client(gw).responses.create(model=model, input="stream me please", stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]  # fmt: skip
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: stream me please"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == text and final.usage is not None and final.usage.output_tokens == 4


async def test_translated_request_shape(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    reply = await client(gw).responses.create(
        model="chatted",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "where"}]}],
        instructions="sys",
        max_output_tokens=40,
        temperature=0.5,
        reasoning={"effort": "low"},
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
    )
    assert json.loads(reply.output_text) == {"city": "where"}
    sent = openai_fake.last
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "where"}]
    assert sent.body["max_completion_tokens"] == 40 and sent.body["temperature"] == 0.5
    assert sent.body["reasoning_effort"] == "low"
    assert sent.body["response_format"] == {"type": "json_schema", "json_schema": {"name": "place", "schema": schema,
                                                                                   "strict": True}}  # fmt: skip


@pytest.mark.parametrize("model", ["chatted", "claude", "native"])
async def test_function_tools_and_outputs(gw: RunningGateway, model: str) -> None:
    first = await client(gw).responses.create(model=model, input="look it up", tools=TOOLS)  # type: ignore[arg-type]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "lookup" and json.loads(calls[0].arguments) == {"arg": "x"}
    second = await client(gw).responses.create(
        model=model,
        previous_response_id=first.id,
        tools=TOOLS,  # type: ignore[arg-type]
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "42 degrees"}],
    )
    assert second.output_text.startswith("echo:")
    assert second.previous_response_id == first.id


async def test_translated_tool_call_stream(gw: RunningGateway) -> None:
    stream = await client(gw).responses.create(model="claude", input="look", tools=TOOLS, stream=True)  # type: ignore[arg-type]
    events = [event async for event in stream]
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"arg": "x"}
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output[0].type == "function_call" and final.output[0].name == "lookup"


async def test_untranslatable_field_is_a_400_only_where_translated(gw: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client(gw).responses.create(model="claude", input="hi", tools=[{"type": "web_search"}])  # type: ignore[list-item]
    assert info.value.body["param"] == "tools[0]" and info.value.body["code"] == "unsupported_parameter"  # type: ignore[index]
    reply = await client(gw).responses.create(model="native", input="hi", tools=[{"type": "web_search"}])  # type: ignore[list-item]
    assert reply.output_text == "echo: hi"


async def test_bad_input_is_a_clear_400(gw: RunningGateway) -> None:
    for kwargs, param in (({"input": 5}, "input"), ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
                          ({"input": "x", "temperature": 9}, "temperature")):  # fmt: skip
        with pytest.raises(openai.BadRequestError) as info:
            await client(gw).responses.create(model="native", **kwargs)  # type: ignore[call-overload]
        assert info.value.body["param"] == param  # type: ignore[index]


# -- state: store, previous_response_id, retrieve, input_items, delete -----------------------------


async def test_conversation_state_follows_across_providers(gw: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    first = await client(gw).responses.create(model="native", input="my name is Ada")
    second = await client(gw).responses.create(model="claude", input="what is my name", previous_response_id=first.id)
    assert second.output_text == "echo: what is my name"
    sent = anthropic_fake.last.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][0]["text"] == "echo: my name is Ada"

    third = await client(gw).responses.create(model="native", input="and again", previous_response_id=second.id)
    items = await client(gw).responses.input_items.list(third.id, order="asc")
    texts = [getattr(item, "content", [None])[0] for item in items.data]
    assert [getattr(t, "text", None) for t in texts] == ["my name is Ada", "echo: my name is Ada", "what is my name",
                                                         "echo: what is my name", "and again"]  # fmt: skip
    fetched = await client(gw).responses.retrieve(second.id)
    assert fetched.id == second.id and fetched.output_text == second.output_text


async def test_other_tenants_and_deleted_ids_are_404(gw: RunningGateway) -> None:
    mine = await client(gw).responses.create(model="chatted", input="secret")
    for call in (client(gw, "sk-team-b").responses.retrieve(mine.id),
                 client(gw, "sk-team-b").responses.create(model="chatted", input="x", previous_response_id=mine.id),
                 client(gw, "sk-team-b").responses.delete(mine.id)):  # fmt: skip
        with pytest.raises(openai.NotFoundError):
            await call
    await client(gw).responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError) as info:
        await client(gw).responses.retrieve(mine.id)
    assert info.value.body["code"] == "response_not_found"  # type: ignore[index]


async def test_store_false_keeps_nothing(gw: RunningGateway) -> None:
    reply = await client(gw).responses.create(model="claude", input="forget me", store=False)
    assert reply.store is False
    with pytest.raises(openai.NotFoundError):
        await client(gw).responses.retrieve(reply.id)


async def test_stream_is_stored_too(gw: RunningGateway) -> None:
    for model in ("native", "chatted"):
        stream = await client(gw).responses.create(model=model, input="keep this", stream=True)
        final = [e async for e in stream][-1].response  # type: ignore[union-attr]
        fetched = await client(gw).responses.retrieve(final.id)
        assert fetched.output_text == "echo: keep this"


async def test_unauthenticated_lookup_is_401(gw: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        await client(gw, "wrong").responses.retrieve("resp_x")


# -- levers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["native", "chatted"])
async def test_cache_answers_repeats(gw: RunningGateway, openai_fake: OpenAIFake, model: str) -> None:
    ask = {"model": model, "input": f"cache me {model}", "temperature": 0}
    first = await client(gw).responses.with_raw_response.create(**ask)  # type: ignore[call-overload]
    calls = len(openai_fake.requests)
    again = await client(gw).responses.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert again.headers["x-tokenomy-cache"] == "hit-exact" and len(openai_fake.requests) == calls
    assert again.parse().output_text == first.parse().output_text
    stream = await client(gw).responses.create(**ask, stream=True)  # type: ignore[call-overload]
    events = [e async for e in stream]
    assert events[-1].type == "response.completed" and events[-1].response.output_text == first.parse().output_text
    assert len(openai_fake.requests) == calls
    chat = await client(gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": f"cache me {model}"}], temperature=0
    )
    assert chat.headers.get("x-tokenomy-cache") != "hit-exact"  # another wire's answers are never served


async def test_expired_state_is_a_clear_404(openai_fake: OpenAIFake, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("expiring") / "responses.db"
    config = f"""
responses: {{path: "{path}", retention_s: 0.2}}
models:
  - name: native
    deployments: [{{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}",
                   model: gpt-4o-mini}}]
"""
    async with running_gateway(config) as other:
        first = await client(other).responses.create(model="native", input="remember me")
        await asyncio.sleep(0.3)
        with pytest.raises(openai.NotFoundError) as info:
            await client(other).responses.create(model="native", input="again", previous_response_id=first.id)
    assert info.value.body["code"] == "response_expired" and "expired" in info.value.message  # type: ignore[index]
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


async def test_ledger_records_native_and_translated_calls(gw: RunningGateway) -> None:
    rid = {"x-request-id": "rl-1"}
    native = await client(gw).responses.create(model="native", input="ledger me", extra_headers=rid)
    stream = await client(gw).responses.create(
        model="native", input="ledger me streamed", stream=True, extra_headers={"x-request-id": "rl-2"}
    )
    _ = [e async for e in stream]
    await client(gw).responses.create(model="claude", input="ledger me too", extra_headers={"x-request-id": "rl-3"})
    rows = await gw.ledger_rows(
        "SELECT client_request_id, wire, tenant, provider, prompt_tokens, completion_tokens, token_source"
        " FROM requests WHERE client_request_id IN ('rl-1', 'rl-2', 'rl-3') ORDER BY client_request_id"
    )
    assert [(r[0], r[1], r[2], r[3], r[6]) for r in rows] == [
        ("rl-1", "responses", "team-a", "openai", "provider"),
        ("rl-2", "responses", "team-a", "openai", "provider"),
        ("rl-3", "responses", "team-a", "anthropic", "provider"),
    ]
    assert native.usage is not None and rows[0][4:6] == (native.usage.input_tokens, native.usage.output_tokens)
    assert all(r[4] > 0 and r[5] > 0 for r in rows)
