"""Every request through a real gateway lands in the SQLite ledger with tokens, cost and baseline."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.pricing.prices import lookup

MSG = [{"role": "user", "content": "What is the capital of France and why is it famous?"}]
PRICED = """
  - name: priced
    deployments:
      - {{provider: openai, base_url: "{url}", api_key: "${{T_OPENAI_KEY:-sk-fake-openai}}", model: my-private-model,
          pricing: {{input_per_mtok: 2.0, output_per_mtok: 8.0}}}}
"""


@pytest.fixture(scope="module")
async def ledger_gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningGateway, Path]]:
    path = tmp_path_factory.mktemp("ledger") / "ledger.db"
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url)
    config += PRICED.format(url=openai_fake.base_url)
    config += f'ledger: {{path: "{path}", flush_interval_ms: 20, store_prompts: true}}\n'
    async with running_gateway(config) as gw:
        yield gw, path


def rows(path: Path, **where: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    clause = " AND ".join(f"{k} = ?" for k in where) or "1"
    found = [dict(r) for r in conn.execute(f"SELECT * FROM requests WHERE {clause}", tuple(where.values()))]
    conn.close()
    return found


async def one(gw: RunningGateway, path: Path, request_id: str) -> dict[str, Any]:
    await gw.flush_ledger()
    # a client's own x-request-id is the correlation field; the gateway's id is the primary key
    found = rows(path, request_id=request_id) or rows(path, client_request_id=request_id)
    assert len(found) == 1, f"{request_id} is in the ledger {len(found)} times"
    return found[0]


def oai(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


async def test_chat_is_recorded_with_cost_from_the_price_database(ledger_gw: tuple[RunningGateway, Path]) -> None:
    gw, path = ledger_gw
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast", messages=MSG, user="alice", extra_headers={"x-tokenomy-task": "geo"}
    )
    reply = raw.parse()
    row = await one(gw, path, raw.headers["x-request-id"])
    assert reply.usage is not None
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert row["token_source"] == "provider" and row["price_source"] == "genai-prices"
    price = lookup("gpt-4o-mini", "openai")
    assert price is not None
    expected = reply.usage.prompt_tokens * price.input + reply.usage.completion_tokens * price.output
    assert row["cost_usd"] == pytest.approx(expected) and row["cost_usd"] > 0
    assert row["baseline_cost_usd"] == pytest.approx(expected)  # no lever applied: baseline = cost
    assert row["saved_cache_usd"] == row["saved_routing_usd"] == row["saved_compression_usd"] == 0
    assert (row["task"], row["end_user"], row["language"]) == ("geo", "alice", "en")
    assert (row["requested_model"], row["served_model"], row["provider"]) == ("fast", "fast", "openai")
    assert row["deployment"] == "openai/gpt-4o-mini" and row["status"] == 200 and row["error_type"] is None
    assert row["latency_ms"] > 0 and row["ttft_ms"] is None and row["stream"] == 0
    assert row["prompt"] is not None and "capital of France" in row["prompt"] and len(row["prompt_hash"]) == 32


async def test_config_pricing_overrides_the_database(ledger_gw: tuple[RunningGateway, Path]) -> None:
    gw, path = ledger_gw
    raw = await oai(gw).chat.completions.with_raw_response.create(model="priced", messages=MSG)
    usage = raw.parse().usage
    row = await one(gw, path, raw.headers["x-request-id"])
    assert usage is not None and row["price_source"] == "config"
    assert row["cost_usd"] == pytest.approx((usage.prompt_tokens * 2.0 + usage.completion_tokens * 8.0) / 1e6)


async def test_stream_without_usage_is_counted_locally(
    ledger_gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    gw, path = ledger_gw
    openai_fake.queue_modes("no_usage_stream")
    raw = await oai(gw).chat.completions.with_raw_response.create(model="fast", messages=MSG, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    row = await one(gw, path, raw.headers["x-request-id"])
    import tiktoken

    enc = tiktoken.get_encoding("o200k_base")  # gpt-4o-mini's encoding, from the seeded offline cache
    assert row["token_source"] == "counted"
    assert row["completion_tokens"] == len(enc.encode(text)) > 0
    # OpenAI's chat accounting: 3 per message + role + content, plus 3 to prime the reply
    assert row["prompt_tokens"] == 3 + len(enc.encode("user")) + len(enc.encode(MSG[0]["content"])) + 3
    assert row["stream"] == 1 and row["ttft_ms"] is not None and row["cost_usd"] > 0


async def test_errors_are_recorded(ledger_gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake) -> None:
    gw, path = ledger_gw
    with pytest.raises(openai.NotFoundError) as missing:
        await oai(gw).chat.completions.with_raw_response.create(model="no-such-model", messages=MSG)
    row = await one(gw, path, missing.value.response.headers["x-request-id"])
    assert (row["status"], row["error_type"], row["served_model"]) == (404, "invalid_request_error", None)
    assert row["cost_usd"] == 0 and row["baseline_cost_usd"] == 0

    openai_fake.queue_modes("error_500")
    with pytest.raises(openai.APIStatusError) as failed:
        await oai(gw).chat.completions.create(model="fast", messages=MSG)
    row = await one(gw, path, failed.value.response.headers["x-request-id"])
    assert row["status"] == 502 and row["provider"] == "openai" and row["prompt_tokens"] == 0


async def test_client_disconnect_is_recorded(ledger_gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake) -> None:
    gw, path = ledger_gw
    openai_fake.queue_modes("slow")
    task = asyncio.create_task(
        oai(gw).chat.completions.create(model="fast", messages=MSG, extra_headers={"x-request-id": "gone-1"})
    )
    seen = len(openai_fake.requests)
    for _ in range(400):  # cancel once the call is upstream (the slow answer holds it there), not after a guess
        if len(openai_fake.requests) > seen:
            break
        await asyncio.sleep(0.025)
    task.cancel()
    for _ in range(100):
        await gw.flush_ledger()
        if rows(path, client_request_id="gone-1"):
            break
        await asyncio.sleep(0.05)
    row = await one(gw, path, "gone-1")
    assert row["status"] == 499 and row["error_type"] == "client_disconnected"


async def test_anthropic_and_embeddings_are_recorded(ledger_gw: tuple[RunningGateway, Path]) -> None:
    gw, path = ledger_gw
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0)
    raw = await client.messages.with_raw_response.create(
        model="claude", max_tokens=50, messages=[{"role": "user", "content": "Wie spät ist es gerade in Berlin?"}]
    )
    message = await raw.parse()
    row = await one(gw, path, raw.headers["x-request-id"])
    assert (row["wire"], row["provider"], row["language"]) == ("anthropic", "anthropic", "de")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (message.usage.input_tokens, message.usage.output_tokens)
    assert row["cost_usd"] > 0

    emb = await oai(gw).embeddings.with_raw_response.create(model="embed", input=["one", "two"])
    row = await one(gw, path, emb.headers["x-request-id"])
    assert row["endpoint"] == "embeddings" and row["prompt_tokens"] > 0 and row["completion_tokens"] == 0
    assert row["price_source"] == "genai-prices"


async def test_concurrent_requests_each_land_once(ledger_gw: tuple[RunningGateway, Path]) -> None:
    gw, path = ledger_gw
    client = oai(gw)
    ids = [f"burst-{i}" for i in range(200)]
    await asyncio.gather(
        *(
            client.chat.completions.create(model="fast", messages=MSG, extra_headers={"x-request-id": rid})
            for rid in ids
        )
    )
    await gw.flush_ledger()
    conn = sqlite3.connect(path)
    found = conn.execute("SELECT count(*) FROM requests WHERE client_request_id LIKE 'burst-%'").fetchone()[0]
    conn.close()
    assert found == len(ids)


async def test_requests_rejected_at_the_edge_are_recorded(ledger_gw: tuple[RunningGateway, Path]) -> None:
    gw, path = ledger_gw
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for rid, body in (("bad-json-1", b"{not json"), ("bad-field-1", b'{"model": "fast", "messages": 3}')):
            async with http.post(
                f"{gw.v1}/chat/completions",
                data=body,
                headers={"x-request-id": rid, "content-type": "application/json"},
            ) as resp:
                assert resp.status == 400
    for rid in ("bad-json-1", "bad-field-1"):
        row = await one(gw, path, rid)
        assert (row["status"], row["error_type"], row["cost_usd"]) == (400, "invalid_request_error", 0)
