"""The query layer directly: token economy and time series roll-ups, prompts, index choice, percentiles."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
from tests.reports.conftest import Ledger
from tests.reports.helpers import (
    BASE,
    as_tuples,
    check_full_report,
    full_report,
    records,
    sums_by,
    write_ledger,
)

from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.reports.model import ReportQuery, Sections, Window
from tokenomy.reports.percentiles import grouped
from tokenomy.reports.query import ReportError, _plan, run_query


def test_token_economy_series_and_prompts_match_the_records(ledger: Ledger) -> None:
    check_full_report(full_report(SqliteStore(ledger.path)), ledger.records)


@pytest.mark.parametrize(
    ("window", "uses_index"),
    [
        (Window(BASE + 86400, BASE + 1.2 * 86400), True),
        (Window(BASE + 3600, None), False),
        (Window(None, BASE + 4 * 86400), False),
        (Window(BASE + 4.5 * 86400, None), True),
    ],
    ids=["narrow window", "wide window", "until only", "since only, narrow"],
)
def test_index_or_scan_the_results_are_the_same(ledger: Ledger, window: Window, uses_index: bool) -> None:
    store = SqliteStore(ledger.path)
    assert _plan(store, ReportQuery(window=window)).ts_index is uses_index
    report = full_report(store, window)
    lo, hi = window.since or 0.0, window.until or float("inf")
    inside = [r for r in ledger.records if lo <= r.ts < hi]
    assert 0 < len(inside) < len(ledger.records)
    assert as_tuples(report.by_task) == sums_by(inside, "task")
    assert report.total.sums.errors == sum(1 for r in inside if r.status >= 400)


def test_a_short_window_is_plotted_hourly(tmp_path: Path) -> None:
    items = records(50, seed=5, start=BASE, span_s=6 * 3600)
    write_ledger(tmp_path / "l.db", items)
    report = full_report(SqliteStore(tmp_path / "l.db"))
    assert report.bucket_s == 3600
    hours: dict[float, int] = defaultdict(int)
    for r in items:
        hours[(r.ts // 3600) * 3600] += 1
    assert [(start, sums.requests) for start, sums in report.series] == sorted(hours.items())


def test_prompts_stay_hashed_unless_asked(ledger: Ledger) -> None:
    hidden = Sections(economy=True, top_prompts=10, show_prompts=False)
    report = run_query(SqliteStore(ledger.path), ReportQuery(sections=hidden))
    assert report.top_prompts and all(p.prompt is None for p in report.top_prompts)


def test_missing_ledger_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no ledger at"):
        run_query(SqliteStore(tmp_path / "absent.db"), ReportQuery())


def test_grouped_percentiles_match_statistics() -> None:
    rng = random.Random(9)
    rows = [(rng.choice(["a", "b", "c", 7]), rng.expovariate(0.01)) for _ in range(2000)]
    rows += [("single", 42.0)]
    per_group, overall = grouped(rows)
    for name in ("a", "b", "c", 7):
        values = [v for g, v in rows if g == name]
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        assert per_group[name].p50 == pytest.approx(cuts[49], rel=1e-12)
        assert per_group[name].p95 == pytest.approx(cuts[94], rel=1e-12)
        assert per_group[name].p99 == pytest.approx(cuts[98], rel=1e-12)
    assert per_group["single"].p50 == per_group["single"].p99 == 42.0
    assert overall.p50 == pytest.approx(statistics.median(v for _, v in rows), rel=1e-12)
    assert grouped([]) == ({}, grouped([])[1]) and grouped([])[1].p50 is None
