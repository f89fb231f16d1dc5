"""The OpenAI Batch API through a real gateway, driven by the official ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import sqlite3
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
    - {name: alice, sha256: "%s", tenant: team-a}
    - {name: bob, sha256: "%s", tenant: team-b}
"""


def sha(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
async def batch_gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path
) -> AsyncIterator[tuple[RunningGateway, Path]]:
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url)
    config += KEYS % (sha("sk-alice"), sha("sk-bob"))
    config += f'batches: {{dir: "{tmp_path / "batches"}", max_lines: 50}}\n'
    config += f'ledger: {{path: "{tmp_path / "ledger.db"}", flush_interval_ms: 20}}\n'
    async with running_gateway(config) as gw:
        yield gw, tmp_path


def client(gw: RunningGateway, key: str = "sk-alice") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=0)


def chat_line(custom_id: str, text: str, model: str = "fast", url: str = "/v1/chat/completions") -> str:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


async def wait_done(oai: openai.AsyncOpenAI, batch_id: str, within: float = 20.0) -> Any:
    async with asyncio.timeout(within):
        while True:
            batch = await oai.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "cancelled", "expired"):
                return batch
            await asyncio.sleep(0.05)


async def lines_of(oai: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = await oai.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]


async def test_full_flow_with_a_malformed_line_and_an_upstream_error(batch_gw: tuple[RunningGateway, Path]) -> None:
    gw, home = batch_gw
    oai = client(gw)
    rows = [chat_line(f"req-{i}", f"question number {i}") for i in range(6)]
    rows.insert(3, "{not json")
    rows.append(chat_line("bad-model", "hello", model="no-such-model"))
    uploaded = await oai.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0 and uploaded.filename == "in.jsonl"
    batch = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"job": "nightly"},
    )  # fmt: skip
    assert batch.status in ("validating", "in_progress") and batch.metadata == {"job": "nightly"}
    done = await wait_done(oai, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (8, 6, 2)
    assert done.completed_at and done.in_progress_at and done.finalizing_at
    out = await lines_of(oai, done.output_file_id)
    assert sorted(line["custom_id"] for line in out) == [f"req-{i}" for i in range(6)]
    for line in out:
        assert line["response"]["status_code"] == 200 and line["error"] is None
        assert line["response"]["body"]["object"] == "chat.completion"
        i = line["custom_id"].split("-")[1]
        assert f"question number {i}" in json.dumps(gw_last_prompt(line))  # the fake echoes the prompt
    errors = {(line["custom_id"], json.dumps(line)) for line in await lines_of(oai, done.error_file_id)}
    by_id = {cid: text for cid, text in errors}
    assert set(by_id) == {None, "bad-model"}
    assert '"line": 4' in by_id[None] and "invalid_json_line" in by_id[None]
    assert '"status_code": 404' in by_id["bad-model"]
    # every executed request is in the ledger under the batch owner's tenant
    await gw.flush_ledger()
    conn = sqlite3.connect(home / "ledger.db")
    tenants = conn.execute(
        "SELECT tenant, count(*) FROM requests WHERE request_id LIKE 'batch_req_%' GROUP BY 1"
    ).fetchall()
    conn.close()
    assert tenants == [("team-a", 7)]


def gw_last_prompt(line: dict[str, Any]) -> Any:
    return line["response"]["body"]["choices"][0]["message"]["content"]


async def test_a_tenant_never_sees_another_tenants_files_or_batches(batch_gw: tuple[RunningGateway, Path]) -> None:
    gw, _ = batch_gw
    alice, bob = client(gw), client(gw, "sk-bob")
    uploaded = await alice.files.create(file=("a.jsonl", chat_line("x", "hi").encode()), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        await bob.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        await bob.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        await bob.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        await bob.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = await alice.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.NotFoundError):
        await bob.batches.retrieve(batch.id)
    assert [b.id async for b in bob.batches.list()] == []
    assert batch.id in [b.id async for b in alice.batches.list()]
    assert [f.id async for f in bob.files.list()] == []
    assert (await alice.files.retrieve(uploaded.id)).id == uploaded.id
    await wait_done(alice, batch.id)
    assert (await alice.files.delete(uploaded.id)).deleted
    with pytest.raises(openai.NotFoundError):
        await alice.files.retrieve(uploaded.id)


async def test_whole_batch_failures_name_the_lines(batch_gw: tuple[RunningGateway, Path]) -> None:
    gw, _ = batch_gw
    oai = client(gw)
    rows = [chat_line("a", "one"), chat_line("a", "two"), chat_line("b", "three", url="/v1/embeddings")]
    uploaded = await oai.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
    batch = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.errors is not None and batch.errors.data is not None
    found = {(e.code, e.line) for e in batch.errors.data}
    assert found == {("duplicate_custom_id", 2), ("mismatched_endpoint", 3)}


async def test_bad_uploads_and_requests_get_openai_errors(batch_gw: tuple[RunningGateway, Path]) -> None:
    gw, _ = batch_gw
    oai = client(gw)
    too_many = "\n".join(chat_line(f"r{i}", "x") for i in range(51)).encode()
    with pytest.raises(openai.BadRequestError, match="more than 50 lines"):
        await oai.files.create(file=("big.jsonl", too_many), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        await oai.files.create(file=("a.jsonl", b"{}"), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        await oai.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    uploaded = await oai.files.create(file=("a.jsonl", chat_line("x", "hi").encode()), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/moderations", completion_window="24h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError):
        await client(gw, "sk-wrong").files.list()


async def test_embeddings_batch(batch_gw: tuple[RunningGateway, Path]) -> None:
    gw, _ = batch_gw
    oai = client(gw)
    rows = [
        json.dumps(
            {
                "custom_id": f"e{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "embed", "input": f"text {i}"},
            }
        )
        for i in range(3)
    ]
    uploaded = await oai.files.create(file=("e.jsonl", "\n".join(rows).encode()), purpose="batch")
    batch = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    done = await wait_done(oai, batch.id)
    out = await lines_of(oai, done.output_file_id)
    assert sorted(line["custom_id"] for line in out) == ["e0", "e1", "e2"]
    assert all(line["response"]["body"]["data"][0]["embedding"] for line in out)
    assert done.error_file_id is None


async def test_cancel_mid_way_keeps_finished_results_and_marks_the_rest(
    batch_gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    gw, _ = batch_gw
    delay = openai_fake.delay
    openai_fake.mode, openai_fake.delay = "slow", 0.2  # the session's fake: both restored below
    try:
        await _cancel_mid_way(gw)
    finally:
        openai_fake.mode, openai_fake.delay = "ok", delay


async def _cancel_mid_way(gw: RunningGateway) -> None:
    oai = client(gw)
    rows = [chat_line(f"c{i}", f"item {i}") for i in range(40)]
    uploaded = await oai.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
    batch = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    async with asyncio.timeout(20):
        while True:
            current = await oai.batches.retrieve(batch.id)
            if current.request_counts is not None and current.request_counts.completed >= 8:
                break
            await asyncio.sleep(0.02)
    cancelling = await oai.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    done = await wait_done(oai, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert current.request_counts is not None and done.request_counts is not None
    out = await lines_of(oai, done.output_file_id)
    errors = await lines_of(oai, done.error_file_id)
    assert len(out) == done.request_counts.completed >= 8
    assert all(line["response"]["status_code"] == 200 for line in out)
    assert len(out) + len(errors) == 40
    assert errors and all(line["error"]["code"] == "batch_cancelled" for line in errors)
    assert {line["custom_id"] for line in out + errors} == {f"c{i}" for i in range(40)}
    with pytest.raises(openai.ConflictError):
        await oai.batches.cancel(batch.id)
