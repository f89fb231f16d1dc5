"""The cache stage through a real gateway, called with the official ``openai`` client."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

KEYS = """
auth:
  keys:
    - {name: alice, key: "${T_ALICE:-sk-alice}", tenant: team-a}
    - {name: bob, key: "${T_BOB:-sk-bob}", tenant: team-b}
"""


def cache_config(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, home: Path, extra: str = "") -> str:
    return (
        proxy_config(openai_fake.base_url, anthropic_fake.base_url)
        + KEYS
        + f"""
cache:
  exact: {{path: "{home / "cache.db"}", max_entry_bytes: 20000}}
  shared_namespaces: [public]
{extra}
ledger: {{path: "{home / "ledger.db"}", flush_interval_ms: 20}}
"""
    )


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    home = tmp_path_factory.mktemp("cache")
    async with running_gateway(cache_config(openai_fake, anthropic_fake, home)) as running:
        yield running


def client(gw: RunningGateway, key: str = "sk-alice") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=0)


def question() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"what is {uuid.uuid4().hex[:8]}?"}]


async def ask(gw: RunningGateway, messages: Any, key: str = "sk-alice", **kw: Any) -> tuple[Any, dict[str, str]]:
    raw = await client(gw, key).chat.completions.with_raw_response.create(
        model="fast", messages=messages, temperature=0, **kw
    )
    return raw.parse(), dict(raw.headers)


async def test_identical_deterministic_request_is_served_from_the_cache(
    gw: RunningGateway, openai_fake: OpenAIFake
) -> None:
    msgs = question()
    first, h1 = await ask(gw, msgs)
    second, h2 = await ask(gw, msgs)
    assert (h1["x-tokenomy-cache"], h2["x-tokenomy-cache"]) == ("miss", "hit-exact")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert len(openai_fake.requests) == 1
    # field order and streaming flags do not change the key; a different parameter does
    _, h3 = await ask(gw, msgs, max_tokens=5)
    assert h3["x-tokenomy-cache"] == "miss" and len(openai_fake.requests) == 2


async def test_nondeterministic_requests_bypass(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    msgs = question()
    for _ in range(2):
        raw = await client(gw).chat.completions.with_raw_response.create(model="fast", messages=msgs)
        assert raw.headers["x-tokenomy-cache"] == "bypass"
    assert len(openai_fake.requests) == 2
    _, h = await ask(gw, msgs, seed=3)  # a seed makes it deterministic again
    assert h["x-tokenomy-cache"] == "miss"


async def test_streams_replay_cached_answers_and_fill_the_cache(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    msgs = question()
    whole, _ = await ask(gw, msgs)
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="fast", messages=msgs, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in raw.parse()]
    assert raw.headers["x-tokenomy-cache"] == "hit-exact"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    # a streamed miss is assembled and stored: the next whole request is a hit with the same text
    msgs2 = question()
    stream = await client(gw).chat.completions.create(model="fast", messages=msgs2, temperature=0, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    again, h = await ask(gw, msgs2)
    assert h["x-tokenomy-cache"] == "hit-exact" and again.choices[0].message.content == streamed
    assert len(openai_fake.requests) == 2


async def test_cache_control_directives(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    msgs = question()
    _, h = await ask(gw, msgs, extra_headers={"cache-control": "no-store"})
    _, h2 = await ask(gw, msgs)
    assert (h["x-tokenomy-cache"], h2["x-tokenomy-cache"]) == ("miss", "miss")  # the first was not stored
    _, h3 = await ask(gw, msgs, extra_headers={"cache-control": "no-cache"})
    assert h3["x-tokenomy-cache"] == "miss" and len(openai_fake.requests) == 3
    await asyncio.sleep(1.1)
    _, h4 = await ask(gw, msgs, extra_headers={"cache-control": "max-age=1"})
    assert h4["x-tokenomy-cache"] == "miss"  # older than a second
    _, h5 = await ask(gw, msgs, extra_headers={"cache-control": "max-age=60"})
    assert h5["x-tokenomy-cache"] == "hit-exact"


async def test_tenants_do_not_share_unless_the_namespace_is_shared(gw: RunningGateway) -> None:
    msgs = question()
    await ask(gw, msgs, key="sk-alice")
    _, h = await ask(gw, msgs, key="sk-bob")
    assert h["x-tokenomy-cache"] == "miss"
    shared = {"x-tokenomy-cache-namespace": "public"}
    await ask(gw, msgs, key="sk-alice", extra_headers=shared)
    _, h2 = await ask(gw, msgs, key="sk-bob", extra_headers=shared)
    assert h2["x-tokenomy-cache"] == "hit-exact"
    _, h3 = await ask(gw, msgs, key="sk-bob", extra_headers={"x-tokenomy-cache-namespace": "private-one"})
    assert h3["x-tokenomy-cache"] == "miss"


async def test_single_flight_makes_one_upstream_call(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    msgs = question()
    openai_fake.mode, openai_fake.delay = "slow", 0.5
    try:
        results = await asyncio.gather(*(ask(gw, msgs) for _ in range(100)))
    finally:
        openai_fake.mode, openai_fake.delay = "ok", 5.0
    outcomes = [h["x-tokenomy-cache"] for _, h in results]
    assert len(openai_fake.requests) == 1
    assert outcomes.count("miss") == 1 and outcomes.count("coalesced") == 99
    assert len({r.choices[0].message.content for r, _ in results}) == 1


async def test_streaming_followers_get_the_whole_stream(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    msgs = question()

    async def streamed() -> str:
        stream = await client(gw).chat.completions.create(model="fast", messages=msgs, temperature=0, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    openai_fake.queue_modes("slow_stream")
    texts = await asyncio.gather(*(streamed() for _ in range(5)), ask(gw, msgs))
    assert len(openai_fake.requests) == 1
    stream_texts = texts[:5]
    assert len(set(stream_texts)) == 1 and stream_texts[0].startswith("tick0")
    assert texts[5][0].choices[0].message.content == stream_texts[0]


async def test_leader_error_reaches_every_follower(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    msgs = question()
    openai_fake.mode, openai_fake.delay = "slow", 0.3
    openai_fake.queue_modes("error_500")
    try:
        results = await asyncio.gather(*(ask(gw, msgs) for _ in range(10)), return_exceptions=True)
    finally:
        openai_fake.mode, openai_fake.delay = "ok", 5.0
    assert all(isinstance(r, openai.APIStatusError) and r.status_code == 502 for r in results)
    assert len(openai_fake.requests) == 1
    _, h = await ask(gw, msgs)  # errors are not cached
    assert h["x-tokenomy-cache"] == "miss"


async def test_oversized_answers_are_not_stored(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    msgs = [{"role": "user", "content": "big " * 6000}]  # the fake echoes it: > max_entry_bytes
    await ask(gw, msgs)
    _, h = await ask(gw, msgs)
    assert h["x-tokenomy-cache"] == "miss" and len(openai_fake.requests) == 2


async def test_hits_are_in_the_ledger_at_zero_cost_with_the_saving(gw: RunningGateway) -> None:
    msgs = question()
    _, h1 = await ask(gw, msgs)
    _, h2 = await ask(gw, msgs)
    await gw.flush_ledger()
    ledger = gw.app.gateway.config.ledger.sqlite_path
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    miss, hit = (
        dict(conn.execute("SELECT * FROM requests WHERE request_id = ?", (h["x-request-id"],)).fetchone())
        for h in (h1, h2)
    )
    conn.close()
    assert miss["cache"] == "miss" and miss["cost_usd"] > 0 and miss["saved_cache_usd"] == 0
    assert hit["cache"] == "hit-exact" and hit["cost_usd"] == 0 and hit["deployment"] is None
    assert hit["baseline_cost_usd"] == pytest.approx(miss["cost_usd"])
    assert hit["saved_cache_usd"] == pytest.approx(miss["cost_usd"])
    assert hit["prompt_tokens"] == miss["prompt_tokens"]


async def test_embeddings_are_cached_per_item(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    tag = uuid.uuid4().hex[:6]
    a, b, c = f"alpha {tag}", f"beta {tag}", f"gamma {tag}"
    direct = await client(gw).embeddings.create(
        model="embed", input=[a, b, c], extra_headers={"cache-control": "no-store"}
    )
    openai_fake.reset()
    await client(gw).embeddings.create(model="embed", input=[a, b])
    raw = await client(gw).embeddings.with_raw_response.create(model="embed", input=[c, b, a])
    mixed = raw.parse()
    assert raw.headers["x-tokenomy-cache-items"] == "2/3"
    assert openai_fake.requests[-1].body["input"] == [c]  # only the unknown input went upstream
    expected = {0: direct.data[2].embedding, 1: direct.data[1].embedding, 2: direct.data[0].embedding}
    for item in mixed.data:
        assert item.embedding == pytest.approx(expected[item.index], abs=1e-6)
    raw = await client(gw).embeddings.with_raw_response.create(model="embed", input=[b, c], encoding_format="base64")
    assert raw.headers["x-tokenomy-cache"] == "hit-exact" and len(openai_fake.requests) == 2


async def test_an_upstream_embedding_that_is_not_a_vector_is_a_502_and_is_not_cached(
    gw: RunningGateway, openai_fake: OpenAIFake
) -> None:
    text = f"delta {uuid.uuid4().hex[:6]}"
    openai_fake.reset()
    openai_fake.queue_modes("bad_embedding")
    with pytest.raises(openai.APIStatusError) as failed:
        await client(gw).embeddings.create(model="embed", input=[text])
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "upstream_bad_response"  # type: ignore[index]
    raw = await client(gw).embeddings.with_raw_response.create(model="embed", input=[text])
    assert raw.headers["x-tokenomy-cache"] == "miss" and len(openai_fake.requests) == 2


async def test_answers_survive_a_restart_and_corrupt_entries_are_misses(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path
) -> None:
    config = cache_config(openai_fake, anthropic_fake, tmp_path)
    good, bad = question(), question()
    async with running_gateway(config) as first:
        await ask(first, good)
        await ask(first, bad)
        await first.app.gateway.cache.drain()
    conn = sqlite3.connect(tmp_path / "cache.db")
    keys = [row[0] for row in conn.execute("SELECT key FROM cache ORDER BY rowid")]
    conn.execute("UPDATE cache SET value = substr(value, 1, 30) WHERE key = ?", (keys[1],))  # truncate one
    conn.commit()
    conn.close()
    openai_fake.reset()
    async with running_gateway(config) as second:
        _, h1 = await ask(second, good)
        _, h2 = await ask(second, bad)
        await second.app.gateway.cache.drain()
    assert (h1["x-tokenomy-cache"], h2["x-tokenomy-cache"]) == ("hit-exact", "miss")
    assert len(openai_fake.requests) == 1  # only the corrupted one went upstream again
    conn = sqlite3.connect(tmp_path / "cache.db")
    values = dict(conn.execute("SELECT key, length(value) FROM cache"))
    conn.close()
    assert values[keys[1]] > 30  # replaced by the fresh answer


async def test_malformed_namespace_header_is_a_clear_400(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await ask(gw, question(), extra_headers={"x-tokenomy-cache-namespace": "no spaces/or slashes"})
    body: Any = info.value.body
    assert body["param"] == "x-tokenomy-cache-namespace" and body["code"] == "invalid_cache_namespace"
    assert not openai_fake.requests
