"""Batches for models listed in ``batches.provider_models`` go to the provider's own batch API."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.batches.test_batch_api import chat_line, lines_of, wait_done
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes.batch_upstreams import (
    AnthropicBatchFake,
    OpenAIBatchFake,
    provider_batch_config,
    start_anthropic_batch_fake,
    start_openai_batch_fake,
)
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.pricing.prices import lookup


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[OpenAIBatchFake, AnthropicBatchFake]]:
    oa = await start_openai_batch_fake(api_key=OPENAI_KEY)
    an = await start_anthropic_batch_fake(api_key=ANTHROPIC_KEY)
    yield oa, an
    await oa.close()
    await an.close()


@pytest.fixture
async def gw(
    fakes: tuple[OpenAIBatchFake, AnthropicBatchFake], tmp_path: Path
) -> AsyncIterator[tuple[RunningGateway, Path]]:
    oa, an = fakes
    ledger = f'ledger: {{path: "{tmp_path / "ledger.db"}", flush_interval_ms: 20}}'
    config = provider_batch_config(tmp_path / "b", oa, an, OPENAI_KEY, ANTHROPIC_KEY, ledger)
    async with running_gateway(config) as running:
        yield running, tmp_path


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    found = [dict(r) for r in conn.execute("SELECT * FROM requests WHERE request_id LIKE 'batch_req_%'")]
    conn.close()
    return found


async def run_batch(running: RunningGateway, model: str, texts: list[str]) -> Any:
    oai = openai.AsyncOpenAI(base_url=running.v1, api_key="x", max_retries=0)
    rows = [chat_line(f"q{i}", text, model=model) for i, text in enumerate(texts)]
    uploaded = await oai.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
    batch = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return oai, await wait_done(oai, batch.id)


@pytest.mark.parametrize("model", ["gpt-batch", "claude-batch"])
async def test_provider_batch_maps_back_and_records_the_discount(
    gw: tuple[RunningGateway, Path], fakes: tuple[OpenAIBatchFake, AnthropicBatchFake], model: str
) -> None:
    running, home = gw
    oa, an = fakes
    texts = ["alpha beta", "gamma delta epsilon", "please FAIL now", "zeta"]
    oai, done = await run_batch(running, model, texts)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 3, 1)
    out = {line["custom_id"]: line for line in await lines_of(oai, done.output_file_id)}
    assert set(out) == {"q0", "q1", "q3"}
    for cid, line in out.items():
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == f"echo: {texts[int(cid[1:])]}"
    errors = await lines_of(oai, done.error_file_id)
    assert [line["custom_id"] for line in errors] == ["q2"] and errors[0]["response"]["status_code"] == 400
    # the provider's batch API was used, once, with the upstream model id; no live calls
    fake = oa if model == "gpt-batch" else an
    created = [r for r in fake.requests if r.path.endswith("batches") and r.body is not None]
    assert len(created) == 1
    assert not any(r.path.endswith(("/chat/completions", "/v1/messages")) for r in fake.requests)
    if model == "claude-batch":
        params = created[0].body["requests"][0]["params"]
        assert params["model"] == "claude-3-5-haiku-latest" and params["max_tokens"] > 0
    # each request is in the ledger at half the list price, the other half saved under batching
    await running.flush_ledger()
    rows = {r["request_id"]: r for r in ledger_rows(home / "ledger.db")}
    assert len(rows) == 4
    price = lookup("gpt-4o-mini" if model == "gpt-batch" else "claude-3-5-haiku-latest",
                   "openai" if model == "gpt-batch" else "anthropic")  # fmt: skip
    assert price is not None
    succeeded = [r for r in rows.values() if r["status"] == 200]
    assert len(succeeded) == 3
    for row in succeeded:
        full = row["prompt_tokens"] * price.input + row["completion_tokens"] * price.output
        assert full > 0
        assert row["cost_usd"] == pytest.approx(full / 2)
        assert row["saved_batching_usd"] == pytest.approx(full / 2)
        assert row["baseline_cost_usd"] == pytest.approx(full)


async def test_an_expired_provider_batch_keeps_what_finished(
    gw: tuple[RunningGateway, Path], fakes: tuple[OpenAIBatchFake, AnthropicBatchFake]
) -> None:
    running, _ = gw
    fakes[0].batch.outcome = "expired"
    oai, done = await run_batch(running, "gpt-batch", [f"text {i}" for i in range(6)])
    assert done.status == "expired" and done.expired_at
    out = await lines_of(oai, done.output_file_id)
    errors = await lines_of(oai, done.error_file_id)
    assert sorted(line["custom_id"] for line in out) == ["q0", "q1", "q2"]
    assert sorted(line["custom_id"] for line in errors) == ["q3", "q4", "q5"]
    assert all(line["error"]["code"] == "batch_expired" for line in errors)


async def test_cancel_reaches_the_provider(
    gw: tuple[RunningGateway, Path], fakes: tuple[OpenAIBatchFake, AnthropicBatchFake]
) -> None:
    running, _ = gw
    an = fakes[1]
    an.batch.polls_until_done = 10_000
    oai = openai.AsyncOpenAI(base_url=running.v1, api_key="x", max_retries=0)
    rows = [chat_line(f"q{i}", f"text {i}", model="claude-batch") for i in range(4)]
    uploaded = await oai.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
    batch = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    async with asyncio.timeout(10):
        while True:
            if any(r.path.endswith("/v1/messages/batches") for r in an.requests):
                break
            await asyncio.sleep(0.02)
    await oai.batches.cancel(batch.id)
    done = await wait_done(oai, batch.id)
    assert done.status == "cancelled"
    assert any(r.path.endswith("/cancel") for r in an.requests)
    out = await lines_of(oai, done.output_file_id)
    errors = await lines_of(oai, done.error_file_id)
    assert len(out) == 2 and len(errors) == 2
    assert {json.dumps(e["error"]["code"]) for e in errors} == {'"batch_cancelled"'}


async def test_a_restart_polls_the_same_provider_batch(
    fakes: tuple[OpenAIBatchFake, AnthropicBatchFake], tmp_path: Path
) -> None:
    oa = fakes[0]
    oa.batch.polls_until_done = 10_000
    config = f"""
batches: {{dir: "{tmp_path / "b"}", provider_models: [gpt-batch], poll_interval_s: 0.05}}
ledger: {{enabled: false}}
models:
  - name: gpt-batch
    deployments:
      - {{provider: openai, base_url: "{oa.base_url}", api_key: "${{T_OA:-{OPENAI_KEY}}}", model: gpt-4o-mini}}
"""
    async with running_gateway(config) as first:
        oai = openai.AsyncOpenAI(base_url=first.v1, api_key="x", max_retries=0)
        rows = [chat_line(f"q{i}", f"text {i}", model="gpt-batch") for i in range(3)]
        uploaded = await oai.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
        batch = await oai.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        async with asyncio.timeout(10):
            while True:
                if sum(r.path == "/v1/batches" for r in oa.requests) == 1:
                    break
                await asyncio.sleep(0.02)
    oa.batch.polls_until_done = 0  # the provider finishes while the gateway is down
    async with running_gateway(config) as second:
        oai = openai.AsyncOpenAI(base_url=second.v1, api_key="x", max_retries=0)
        done = await wait_done(oai, batch.id)
        assert done.status == "completed"
        out = await lines_of(oai, done.output_file_id)
    assert sorted(line["custom_id"] for line in out) == ["q0", "q1", "q2"]
    assert sum(r.path == "/v1/batches" for r in oa.requests) == 1  # submitted once, across the restart
