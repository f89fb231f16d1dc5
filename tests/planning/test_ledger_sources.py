"""Traffic and benchmark lengths read from the ledger, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.fakes.engine import FakeEngine
from tests.reports.helpers import sqlite_config, write_ledger
from tests.support.postgres import PostgresServer, pg_bin

from tokenomy.cli import main
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.postgres import PostgresStore
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.planning import traffic, workload

START = datetime(2025, 6, 1, tzinfo=UTC).timestamp()


def _records() -> list[LedgerRecord]:
    out = []
    for i in range(48):  # two days, one request every hour; hour 5 of day 1 has three more
        out.append(
            LedgerRecord(
                request_id=f"h{i}",
                ts=START + i * 3600 + 10,
                task="chat" if i % 2 else "code",
                status=200,
                prompt_tokens=100 + i,
                cached_tokens=10,
                completion_tokens=4 + i % 3,
            )
        )
    for j in range(3):
        out.append(
            LedgerRecord(
                request_id=f"burst{j}",
                ts=START + 5 * 3600 + 100 + j,
                task="chat",
                status=200,
                prompt_tokens=50,
                completion_tokens=20,
            )
        )
    out.append(LedgerRecord(request_id="failed", ts=START + 60, task="chat", status=500, prompt_tokens=9999))
    return out


def _expected() -> traffic.Traffic:
    recs = [r for r in _records() if r.status == 200]
    out = sum(r.completion_tokens for r in recs)
    peak = max(
        sum(r.completion_tokens for r in recs if int(r.ts // 3600) == h) for h in {int(r.ts // 3600) for r in recs}
    )
    scale = 30 / 2
    return traffic.Traffic(
        len(recs) * scale,
        sum(r.prompt_tokens for r in recs) * scale,
        sum(r.cached_tokens for r in recs) * scale,
        out * scale,
        peak / (out / 48),
        "ledger, 2 days scaled to 30",
        2.0,
    )


def _check(store: SqliteStore | PostgresStore) -> None:
    got = traffic.from_ledger(store, START, START + 2 * 86400, [])
    want = _expected()
    assert got.requests == want.requests and got.output_tokens == want.output_tokens
    assert got.input_tokens == want.input_tokens and got.cached_tokens == want.cached_tokens
    assert got.peak_to_mean == pytest.approx(want.peak_to_mean)
    chat = traffic.from_ledger(store, START, START + 2 * 86400, ["chat"])
    assert chat.requests == 27 * 15
    lengths = workload.ledger_lengths(store, START, "code")
    assert sorted(lengths) == sorted((r.prompt_tokens, r.completion_tokens) for r in _records() if r.task == "code")


def test_traffic_from_sqlite(tmp_path: Path) -> None:
    write_ledger(tmp_path / "l.db", _records())
    store = SqliteStore(tmp_path / "l.db")
    store.open()
    try:
        _check(store)
    finally:
        store.close()


def test_traffic_from_postgres() -> None:
    try:
        pg_bin()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    server = PostgresServer()
    server.start()
    try:
        with server.database() as dsn:
            store = PostgresStore(dsn)
            store.open()
            store.write(_records())
            try:
                _check(store)
            finally:
                store.close()
    finally:
        server.destroy()


def test_bench_from_ledger_sends_the_recorded_lengths(engine: FakeEngine, tmp_path: Path) -> None:
    write_ledger(tmp_path / "l.db", _records())
    config = sqlite_config(tmp_path, tmp_path / "l.db")
    before = len(engine.max_tokens_seen)
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--base-url",
            engine.base_url,
            "--model",
            "fake-llm",
            "--from-ledger",
            "--task",
            "code",
            "--since",
            "2025-06-01",
            "--config",
            str(config),
            "--num-requests",
            "6",
            "--rate",
            "inf",
        ],
    )
    assert result.exit_code == 0, result.output
    sent = engine.max_tokens_seen[before + 1 :]  # after the probe request
    assert len(sent) == 6 and set(sent) <= {r.completion_tokens for r in _records() if r.task == "code"}
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--base-url",
            engine.base_url,
            "--model",
            "fake-llm",
            "--from-ledger",
            "--task",
            "nope",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 1 and "the ledger (task nope) has no successful requests" in result.output
