"""The hourly rollup: kept in step by both stores, built by the migration, read by the dashboard's overview."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tests.ledger.test_stores import StoreFactory, new_store, opened, query

from tokenomy.dashboard import api, explorer
from tokenomy.ledger import rollup
from tokenomy.ledger.record import COLUMNS, LedgerRecord, as_row
from tokenomy.ledger.schema import VERSION_TABLE, migrations
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports.model import ReportQuery, Sections, Window
from tokenomy.reports.query import run_query
from tokenomy.reports.sql import where

__all__ = ["new_store"]  # the fixture, imported for pytest

START = 1_760_000_000.0  # some UTC time, not on an hour
TASKS = ("chat", "rag", "<b>x</b>")
MODELS = ("m-small", "m-big")


def records(n: int, seed: int = 3) -> list[LedgerRecord]:
    """``n`` varied records over about 50 hours: two tenants, errors, streams, shadow copies, cache outcomes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        stream = rng.random() < 0.4
        out.append(
            LedgerRecord(
                request_id=f"r{seed}-{i}",
                ts=START + rng.random() * 50 * 3600,
                tenant=rng.choice(("red", "blue")),
                task=rng.choice(TASKS),
                api_key=rng.choice(("key-a", "key-b", None)),
                requested_model="default",
                served_model=rng.choice((*MODELS, None)),
                deployment=rng.choice(("openai/m", None)),
                provider=rng.choice(("openai", None)),
                stream=stream,
                status=rng.choice((200, 200, 200, 500)),
                prompt_tokens=rng.randint(1, 900),
                completion_tokens=rng.randint(0, 300),
                language=rng.choice(("en", "fr", None, "")),
                latency_ms=rng.lognormvariate(6.0, 0.8),
                ttft_ms=rng.lognormvariate(5.0, 0.5) if stream else None,
                cache=rng.choice(("miss", "hit-exact", "none")),
                cost_usd=rng.random() / 100,
                baseline_cost_usd=rng.random() / 50,
                saved_cache_usd=rng.random() / 500,
                saved_routing_usd=rng.random() / 500,
                shadow_of="r0" if rng.random() < 0.05 else None,
            )
        )
    return out


def rollup_by_dim(
    store: LedgerStore, dims: tuple[rollup.Dim, ...] = rollup.DIMS
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for dim in dims:
        cols = ", ".join(rollup.columns(dim))
        rows = query(store, f"SELECT hour, tenant, dim, a, b, {cols} FROM {rollup.TABLE} WHERE dim = '{dim}'")
        out.update({tuple(r[:5]): _rounded(r[5:]) for r in rows})
    return out


def raw_by_dim(
    store: LedgerStore, dims: tuple[rollup.Dim, ...] = rollup.DIMS
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for dim in dims:
        for row in query(store, rollup.aggregate(dim, "requests", "shadow_of IS NULL", store.dialect)):
            out[(row[0], row[1], dim, row[2], row[3])] = _rounded(tuple(row[4:]))
    return out


def _rounded(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(round(float(v), 9) if isinstance(v, float) else int(v) for v in values)


def test_writes_keep_the_rollup_in_step_and_a_replayed_batch_adds_nothing(new_store: StoreFactory) -> None:
    store = opened(new_store)
    batch = records(600)
    store.write(batch[:300])
    store.write(batch[:300])  # a spool replay: the same request ids
    store.write(batch[250:])
    assert query(store, "SELECT COUNT(*) FROM requests") == [(600,)]
    expected = raw_by_dim(store)
    assert rollup_by_dim(store) == expected
    assert sum(v[0] for k, v in expected.items() if k[2] == "tm") == sum(1 for r in batch if r.shadow_of is None)
    served = [r for r in batch if r.shadow_of is None and r.status < 400]
    assert sum(v[0] for k, v in expected.items() if k[2] == "use") == len(served)
    assert sum(v[0] for k, v in expected.items() if k[2] == "key") == sum(1 for r in batch if r.shadow_of is None)


def test_the_migration_builds_the_rollup_of_records_already_there(new_store: StoreFactory) -> None:
    store = new_store()
    conn = store.connect() if store.dialect == "postgres" else None
    if conn is None:  # a version-3 SQLite ledger with records in it, as an older gateway left it
        import sqlite3

        conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
    mark = "?" if store.dialect == "sqlite" else "%s"
    conn.execute(VERSION_TABLE)
    for version, statements in enumerate(migrations(store.dialect)[:3], start=1):
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"INSERT INTO schema_version (version) VALUES ({mark})", (version,))
    v3_columns = [c for c in COLUMNS if c != "finish_reason"]  # added by version 5
    keep = [i for i, c in enumerate(COLUMNS) if c in v3_columns]
    rows = [tuple(as_row(r)[i] for i in keep) for r in records(400, seed=5)]
    if store.dialect == "postgres":
        rows = [tuple(bool(v) if c == "stream" else v for c, v in zip(v3_columns, row, strict=True)) for row in rows]
    conn.cursor().executemany(
        f"INSERT INTO requests ({', '.join(v3_columns)}) VALUES ({', '.join([mark] * len(v3_columns))})", rows
    )
    conn.commit()
    conn.close()
    store.open()
    assert rollup_by_dim(store) == raw_by_dim(store) != {}


@pytest.mark.parametrize(
    "window",
    [
        Window(),
        Window(START + 1234.5, START + 40 * 3600 + 17.25),  # partial hours at both edges
        Window(START + 600, START + 1500),  # inside one hour
        Window(START + 3 * 3600 + 5, START + 20 * 3600, tenant="red"),
        Window(START - 7200, None, tenant="blue"),
    ],
)
def test_the_overview_equals_the_report_on_any_window(new_store: StoreFactory, window: Window) -> None:
    store = opened(new_store)
    store.write(records(900, seed=11))
    overview = api.overview(store, window)
    report = run_query(store, ReportQuery("task", window, Sections(economy=True)))
    total = overview["total"]
    assert total["requests"] == report.total.sums.requests > 0
    for field in ("errors", "prompt_tokens", "completion_tokens"):
        assert total[field] == getattr(report.total.sums, field), field
    assert total["cost_usd"] == pytest.approx(report.total.sums.cost_usd, abs=1e-12)
    assert total["saved_usd"] == pytest.approx(report.total.sums.saved_usd, abs=1e-12)
    assert {g["group"]: g["requests"] for g in overview["by_task"]} == {g.name: g.sums.requests for g in report.groups}
    assert {g["group"]: g["cost_usd"] for g in overview["by_language"]} == pytest.approx(
        {g.name: g.sums.cost_usd for g in report.by_language}, abs=1e-12
    )
    assert overview["cache"] == explorer.cache_outcomes(store, window)
    assert explorer.choices(store, window) == raw_choices(store, window)
    assert sum(p["requests"] for p in overview["series"]) == total["requests"]
    assert sum(p["cost_usd"] for p in overview["series"]) == pytest.approx(total["cost_usd"], abs=1e-12)
    by_model = run_query(store, ReportQuery("model", window))
    assert {g["group"]: g["requests"] for g in overview["by_model"]} == {
        g.name: g.sums.requests for g in by_model.groups
    }
    # percentiles read from the histogram: within one bucket (a factor 2^(1/3)) of the exact ones
    # (on enough records: with a handful, the exact figure interpolates between far-apart values)
    if total["requests"] < 100:
        return
    exact = report.total.latency
    assert exact.p50 is not None and exact.p95 is not None
    assert exact.p50 / 1.26 <= total["p50_latency_ms"] <= exact.p50 * 1.26
    assert exact.p95 / 1.26 <= total["p95_latency_ms"] <= exact.p95 * 1.26


def raw_choices(store: LedgerStore, window: Window) -> dict[str, list[str]]:
    """The filter menus counted from the raw records (most used first, ties by name)."""
    clause, params = where(window, store.dialect)
    out = {}
    for name, expr in (("task", "task"), ("model", explorer.MODEL), ("key", "api_key")):
        sql = f"SELECT {expr}, COUNT(*) FROM requests{clause} GROUP BY 1"
        conn = store.connect()
        try:
            found = conn.execute(sql, params).fetchall()
        finally:
            conn.close()
        rows = [(str(v), int(n)) for v, n in found if v is not None]
        out[name] = [v for v, _ in sorted(rows, key=lambda r: (-r[1], r[0]))]
    return out


def test_percentiles_from_a_histogram() -> None:
    values = [0.5] * 10 + [10.0] * 80 + [1000.0] * 10
    counts = [0] * rollup.BUCKETS
    for v in values:
        counts[0 if v < 1 else min(rollup.BUCKETS - 1, int(3 * __import__("math").log2(v)) + 1)] += 1
    p50, p95 = rollup.percentile(counts, 50), rollup.percentile(counts, 95)
    assert p50 is not None and 10 / 1.26 <= p50 <= 10 * 1.26
    assert p95 is not None and 1000 / 1.26 <= p95 <= 1000 * 1.26
    assert rollup.percentile([0] * rollup.BUCKETS, 50) is None
