"""Anthropic SDK to an Anthropic deployment keeps every field; to other models nothing is dropped silently.

Callers are the official ``anthropic`` client; ``claude`` is served by the Anthropic fake,
``fast`` by the OpenAI fake (see tests/conftest.py).
"""

from __future__ import annotations

import anthropic
import pytest
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway

RICH = {
    "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": "Policy text.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The sky is blue."},
         "title": "Facts", "citations": {"enabled": True}, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "what colour is the sky"}]}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "metadata": {"user_id": "u-7"},
    "tools": [{"name": "lookup", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    "tool_choice": {"type": "none"},
}  # fmt: skip


EPHEMERAL = {"type": "ephemeral"}
TEXT_DOC = {"type": "document", "citations": {"enabled": True},
            "source": {"type": "text", "media_type": "text/plain", "data": "x"}}  # fmt: skip


def client(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0)


async def test_native_keeps_every_field_and_beta_header(proxy: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    raw = await client(proxy).messages.with_raw_response.create(
        model="claude",
        max_tokens=2000,
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        extra_body={"top_k": 5, "brand_new_field": {"x": 1}},
        **RICH,  # type: ignore[arg-type]
    )
    message = await raw.parse()
    assert message.model == "claude" and raw.headers["x-tokenomy-deployment"].startswith("anthropic/")
    assert message.content[0].type == "text" and message.content[0].text == "echo: what colour is the sky"
    sent = anthropic_fake.last
    assert sent.body == {
        **RICH,
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 2000,
        "top_k": 5,
        "brand_new_field": {"x": 1},
    }
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"


async def test_native_stream_passes_events(proxy: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    async with client(proxy).messages.stream(
        model="claude",
        max_tokens=50,
        system=RICH["system"],
        messages=[{"role": "user", "content": "hi there"}],  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_message()
    assert final.model == "claude" and final.content[0].text == "echo: hi there"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 3
    assert anthropic_fake.last.body["system"] == RICH["system"] and anthropic_fake.last.body["stream"] is True


async def test_native_upstream_error_keeps_the_message(proxy: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.queue_modes("error_400")
    with pytest.raises(anthropic.BadRequestError) as info:
        await client(proxy).messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "fake error_400" in str(info.value)


async def test_native_answers_are_cached_per_wire(proxy: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    ask = {
        "model": "claude",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "cache me"}],
        "extra_body": {"temperature": 0},
    }
    first = await client(proxy).messages.create(**ask)  # type: ignore[arg-type]
    calls = len(anthropic_fake.requests)
    again = await client(proxy).messages.with_raw_response.create(**ask)  # type: ignore[arg-type]
    assert again.headers["x-tokenomy-cache"] == "hit-exact" and (await again.parse()).content == first.content
    async with client(proxy).messages.stream(**ask) as stream:  # type: ignore[arg-type]
        streamed = await stream.get_final_message()
    assert streamed.content[0].text == first.content[0].text and streamed.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert len(anthropic_fake.requests) == calls


# -- translated to another model: translate or refuse, never drop ------------------------------------


async def test_translated_fields_become_chat_fields(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    message = await client(proxy).messages.create(
        model="fast",
        max_tokens=5000,
        system=RICH["system"],
        thinking={"type": "enabled", "budget_tokens": 2000},  # type: ignore[arg-type]
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": EPHEMERAL}]}],
    )
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]
    sent = openai_fake.last.body
    assert sent["reasoning_effort"] == "low" and sent["messages"][0] == {
        "role": "system",
        "content": "You are terse.\n\nPolicy text.",
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"top_k": 5}, "top_k"),
     ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
     ({"container": "c1"}, "container"),
     ({"messages": [{"role": "user", "content": [TEXT_DOC]}]}, "messages.0.content.0.citations")],
)  # fmt: skip
async def test_untranslatable_fields_are_refused(proxy: RunningGateway, extra: dict[str, object], param: str) -> None:
    ask: dict[str, object] = {"model": "fast", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.BadRequestError) as info:
        await client(proxy).messages.create(**ask, extra_body=extra)  # type: ignore[arg-type]
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert info.value.body["error"]["message"].startswith(f"{param}: ")  # type: ignore[index]


# -- count_tokens and errors on every /v1/messages path --------------------------------------------


async def test_count_tokens_exact_from_anthropic(proxy: RunningGateway, anthropic_fake: AnthropicFake) -> None:
    raw = await client(proxy).messages.with_raw_response.count_tokens(
        model="claude", system="be brief", messages=[{"role": "user", "content": "one two three"}]
    )
    assert (await raw.parse()).input_tokens == 5 and raw.headers["x-tokenomy-token-count"] == "exact"
    assert anthropic_fake.last.path == "/v1/messages/count_tokens"
    sent = anthropic_fake.last.body
    assert sent["model"] == "claude-3-5-haiku-latest" and "max_tokens" not in sent


async def test_count_tokens_estimated_elsewhere(proxy: RunningGateway, openai_fake: OpenAIFake) -> None:
    calls = len(openai_fake.requests)
    raw = await client(proxy).messages.with_raw_response.count_tokens(
        model="fast", messages=[{"role": "user", "content": "one two three"}]
    )
    assert (await raw.parse()).input_tokens > 3 and raw.headers["x-tokenomy-token-count"] == "estimated"
    assert len(openai_fake.requests) == calls


async def test_errors_on_messages_paths_are_anthropic_shaped(proxy: RunningGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await client(proxy).messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as info:
        await client(proxy).messages.batches.retrieve("msgbatch_1")
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client(proxy).messages.count_tokens(model="claude", messages=[])
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def test_native_usage_reaches_the_ledger(proxy: RunningGateway) -> None:
    ask = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "count these words please"}]}
    plain = await client(proxy).messages.create(**ask, extra_headers={"x-request-id": "an-1"})  # type: ignore[arg-type]
    async with client(proxy).messages.stream(**ask, extra_headers={"x-request-id": "an-2"}) as stream:  # type: ignore[arg-type]
        await stream.get_final_message()
    rows = await proxy.ledger_rows(
        "SELECT wire, prompt_tokens, completion_tokens, token_source FROM requests"
        " WHERE client_request_id IN ('an-1', 'an-2') ORDER BY client_request_id"
    )
    usage = plain.usage
    assert rows == [("anthropic", usage.input_tokens, usage.output_tokens, "provider")] * 2
