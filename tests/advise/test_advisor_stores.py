"""The advisor's queries on SQLite and PostgreSQL ledgers written with known records: runaway outputs,
duplicates the cache missed, and the same advice from both databases."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.reports.helpers import MODEL_YAML, write_ledger
from tests.support.postgres import PostgresServer, pg_bin

from tokenomy.advise.advisor import advise
from tokenomy.advise.model import Advice
from tokenomy.config import parse_config
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.postgres import PostgresStore
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.pricing.prices import lookup

CONFIG = parse_config(MODEL_YAML)  # model "fast": openai/gpt-4o-mini, priced from the price database
T0 = 1_750_000_000.0


def _records() -> list[LedgerRecord]:
    price = lookup("gpt-4o-mini", "openai")
    assert price is not None
    out = []
    for i in range(40):  # task "essay": answers of 100 tokens, two of them run to 2,000
        completion = 2000 if i in (7, 23) else 100
        out.append(
            LedgerRecord(
                request_id=f"essay-{i}",
                ts=T0 + i * 60,
                task="essay",
                requested_model="fast",
                served_model="fast",
                deployment="openai/gpt-4o-mini",
                provider="openai",
                stream=True,
                prompt_tokens=50,
                completion_tokens=completion,
                cache="miss",
                cost_usd=price.cost(50, completion),
                prompt_hash=hashlib.sha256(str(i).encode()).hexdigest()[:32],
            )
        )
    for i in range(12):  # task "lookup": 3 prompts sent 4 times each, cache looked up and missed
        out.append(
            LedgerRecord(
                request_id=f"lookup-{i}",
                ts=T0 + i * 200 + 7,
                task="lookup",
                requested_model="fast",
                served_model="fast",
                deployment="openai/gpt-4o-mini",
                provider="openai",
                stream=True,
                prompt_tokens=30,
                completion_tokens=10,
                cache="miss",
                cost_usd=0.001,
                prompt_hash=f"h{i % 3}",
            )
        )
    out.append(  # an error: never advised on
        LedgerRecord(
            request_id="err", ts=T0, task="lookup", requested_model="fast", status=500, cost_usd=9.0, prompt_hash="h0"
        )
    )
    return out


def _check(advice: Advice) -> None:
    price = lookup("gpt-4o-mini", "openai")
    assert price is not None
    by_kind = {r.kind: r for r in advice.recommendations}
    assert set(by_kind) == {"output-cap", "cache"}
    cap = by_kind["output-cap"]
    # p95 of 38 x 100 and 2 x 2,000 (linear interpolation) is 195: each long answer loses 1,805 tokens
    assert "195" in cap.title and cap.window_saving_usd == pytest.approx(2 * 1805 * price.output)
    cache = by_kind["cache"]
    assert cache.task == "lookup" and cache.window_saving_usd == pytest.approx(9 * 0.001)
    assert "ttl_s" in cache.action and cache.confidence == "medium"
    assert advice.records == 52 and advice.span_s == pytest.approx(39 * 60)


def test_sqlite_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    write_ledger(path, _records())
    _check(advise(SqliteStore(path), CONFIG))


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    try:
        pg_bin()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    server = PostgresServer()
    server.start()
    try:
        with server.database() as dsn:
            yield dsn
    finally:
        server.destroy()


def test_postgres_ledger_gives_the_same_advice(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    store.open()
    store.write(_records())
    store.close()
    _check(advise(PostgresStore(pg_dsn), CONFIG))


def test_percentile_from_counts_matches_numpy() -> None:
    import numpy as np

    from tokenomy.advise.detectors import _percentile

    rng = np.random.default_rng(3)
    raw = rng.integers(0, 50, 501)
    values, counts = np.unique(raw, return_counts=True)
    for q in (0, 50, 95, 99, 100):
        assert _percentile(values.astype(float), counts, q) == pytest.approx(float(np.percentile(raw, q)))


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from tests.reports.helpers import sqlite_config

    from tokenomy.cli import main

    config = sqlite_config(tmp_path, tmp_path / "missing.db")
    result = CliRunner().invoke(main, ["advise", "--config", str(config)])
    assert result.exit_code == 1 and "no ledger at" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(
        main, ["advise", "--config", str(config), "--since", "2025-02-01", "--until", "2025-01-01"]
    )
    assert result.exit_code == 2 and "--since must be earlier" in result.output
    bad = tmp_path / "evidence.yaml"
    bad.write_text("tasks: [1, 2]\n")
    write_ledger(tmp_path / "missing.db", _records())
    result = CliRunner().invoke(main, ["advise", "--config", str(config), "--evidence", str(bad)])
    assert result.exit_code == 1 and "evidence.yaml" in result.output and "Traceback" not in result.output
