"""Several gateways sharing batch state in a real PostgreSQL, driven by the official ``openai`` client.

Each batch runs on one gateway at a time (a lease in the store); any gateway serves the batch
objects and files (a shared files folder); a cancel through one gateway stops the batch another
runs; and when the gateway running a batch is killed, another takes it over once its lease
expires, with every ``custom_id`` exactly once in the output.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import openai
import pytest
from tests.batches.test_batch_api import chat_line, lines_of, wait_done
from tests.batches.test_batch_restart import kill_all, start, wait_up
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer

LEASE_S = 1.0
CONCURRENCY = 4


def shared_config(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path, name: str) -> str:
    """One gateway's config: its own data folder and ledger, the shared PostgreSQL and files folder."""
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url)
    config += (
        f'batches: {{store: postgres, dsn: "${{T_BATCH_DSN}}", dir: "{tmp_path / name}",'
        f' files_dir: "{tmp_path / "shared-files"}", lease_s: {LEASE_S}, concurrency: {CONCURRENCY},'
        " yield_to_live: 0}\n"
        f'ledger: {{path: "{tmp_path / name / "ledger.db"}", flush_interval_ms: 20}}\n'
    )
    return config


@pytest.fixture
async def two_gateways(
    openai_fake: OpenAIFake,
    anthropic_fake: AnthropicFake,
    postgres_server: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    with postgres_server.database() as dsn:
        monkeypatch.setenv("T_BATCH_DSN", dsn)
        async with AsyncExitStack() as stack:
            gws = [
                await stack.enter_async_context(
                    running_gateway(shared_config(openai_fake, anthropic_fake, tmp_path, name))
                )
                for name in ("gw-a", "gw-b")
            ]
            yield gws[0], gws[1]


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="none", max_retries=0)


def chat_texts(fake: OpenAIFake) -> collections.Counter[str]:
    return collections.Counter(
        r.body["messages"][0]["content"] for r in fake.requests if r.path.endswith("/chat/completions")
    )


async def test_batches_created_on_either_gateway_each_run_once(
    two_gateways: tuple[RunningGateway, RunningGateway], openai_fake: OpenAIFake
) -> None:
    a, b = (client(gw) for gw in two_gateways)
    batches = []
    for n, (creator, reader) in enumerate(((a, b), (b, a), (a, b))):
        rows = [chat_line(f"c{i}", f"batch {n} line {i}") for i in range(20)]
        uploaded = await creator.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
        assert (await reader.files.retrieve(uploaded.id)).bytes == uploaded.bytes  # either gateway serves it
        made = await reader.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        batches.append((n, made.id, creator))
    for _n, batch_id, reader in batches:
        done = await wait_done(reader, batch_id, within=60)
        assert done.status == "completed", done
        out = await lines_of(reader, done.output_file_id)
        assert sorted(line["custom_id"] for line in out) == sorted(f"c{i}" for i in range(20))
        assert {line["response"]["body"]["choices"][0]["message"]["content"] for line in out}  # real answers
    seen = chat_texts(openai_fake)
    assert seen == collections.Counter(f"batch {n} line {i}" for n in range(3) for i in range(20))  # once each


async def test_a_cancel_through_one_gateway_stops_the_batch_the_other_runs(
    two_gateways: tuple[RunningGateway, RunningGateway], openai_fake: OpenAIFake
) -> None:
    a, b = (client(gw) for gw in two_gateways)
    delay = openai_fake.delay
    openai_fake.mode, openai_fake.delay = "slow", 0.1  # the session's fake: both restored below
    try:
        rows = [chat_line(f"c{i}", f"item {i}") for i in range(60)]
        uploaded = await a.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
        batch = await a.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        async with asyncio.timeout(30):
            while True:
                current = await b.batches.retrieve(batch.id)
                if current.request_counts is not None and current.request_counts.completed >= 4:
                    break
                await asyncio.sleep(0.05)
        cancelling = await b.batches.cancel(batch.id)
        assert cancelling.status == "cancelling"
        for reader in (a, b):
            done = await wait_done(reader, batch.id, within=30)
            assert done.status == "cancelled", done
    finally:
        openai_fake.mode, openai_fake.delay = "ok", delay
    out = await lines_of(b, done.output_file_id)
    errors = await lines_of(a, done.error_file_id)
    assert current.request_counts is not None and len(out) >= current.request_counts.completed
    assert errors and all(line["error"]["code"] == "batch_cancelled" for line in errors)
    assert sorted(line["custom_id"] for line in out + errors) == sorted(f"c{i}" for i in range(60))


async def test_another_gateway_takes_over_a_batch_whose_gateway_was_killed(
    openai_fake: OpenAIFake,
    anthropic_fake: AnthropicFake,
    postgres_server: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = 300
    rows = [chat_line(f"c{i}", f"line {i}") for i in range(lines)]
    with postgres_server.database() as dsn:
        monkeypatch.setenv("T_BATCH_DSN", dsn)
        config = tmp_path / "a.yaml"
        config.write_text(shared_config(openai_fake, anthropic_fake, tmp_path, "gw-a"))
        port = free_port()
        killed = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=3)
        proc = await start(config, port, tmp_path / "gw-a")
        try:
            await wait_up(killed)
            uploaded = await killed.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
            batch = await killed.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            async with asyncio.timeout(60):
                while True:
                    counts = (await killed.batches.retrieve(batch.id)).request_counts
                    if counts is not None and counts.completed >= lines // 4:
                        break
                    await asyncio.sleep(0.02)
        finally:
            await kill_all(proc)  # the supervisor and its workers (it serves with one per core)
        sent_before = sum(chat_texts(openai_fake).values())
        assert sent_before < lines, "the batch finished before the kill; the test proves nothing"

        async with running_gateway(shared_config(openai_fake, anthropic_fake, tmp_path, "gw-b")) as gw:
            other = client(gw)
            done = await wait_done(other, batch.id, within=120)
            content = (await other.files.content(done.output_file_id or "")).text
    assert done.status == "completed" and done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (lines, 0)
    ids = collections.Counter(json.loads(line)["custom_id"] for line in content.splitlines())
    assert ids == collections.Counter(f"c{i}" for i in range(lines))  # each exactly once
    seen = chat_texts(openai_fake)
    assert set(seen) == {f"line {i}" for i in range(lines)}  # none lost
    twice = [text for text, n in seen.items() if n > 1]
    assert all(seen[text] == 2 for text in twice) and len(twice) <= CONCURRENCY  # only what was in flight
