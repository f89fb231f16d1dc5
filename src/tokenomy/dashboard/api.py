"""The dashboard's JSON documents, assembled from the report, advisor and explorer queries (blocking:
the routes run them in a worker thread)."""

from __future__ import annotations

import csv
import io
from typing import Any

from tokenomy.config.models import GatewayConfig
from tokenomy.dashboard import explorer, rollup_query
from tokenomy.dashboard.explorer import Filters
from tokenomy.dashboard.rollup_query import Cell
from tokenomy.ledger.record import LEVERS
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports import sql
from tokenomy.reports.formats import group_object
from tokenomy.reports.model import Group, Latency, Report, ReportQuery, Sums, Window

CSV_LIMIT = 100_000
"""Rows a CSV export holds at most (the newest first)."""


def _group(group: Group) -> dict[str, Any]:
    return {**group_object(group), "saved_total_usd": group.sums.saved_total_usd}


def overview(store: LedgerStore, window: Window) -> dict[str, Any]:
    """Totals, savings by lever, per-task and per-model groups, time series, token economy, top prompts.

    Whole hours come from the hourly rollup, the partial hours at the edges from raw records (see
    :mod:`tokenomy.dashboard.rollup_query`). The most expensive prompts are a document of their own
    (:func:`top_prompts`): they need a pass over the raw records.
    """
    rolled = rollup_query.read(store, window)
    by_task, by_model, by_language, cache = _cells(rolled)
    total = Cell()
    for cell in by_task.values():
        total.add(cell)
    return {
        "total": _cell_object("total", total),
        "levers": list(LEVERS),
        "by_task": _ranked(by_task),
        "by_model": _ranked(by_model),
        "by_language": _ranked(by_language, latency=False),
        "bucket_s": rolled.bucket_s,
        "series": [_point(rolled.bucket_s, number, cell) for number, cell in sorted(rolled.series.items())],
        "cache": cache,
    }


def _cells(rolled: rollup_query.Rolled) -> tuple[dict[str, Cell], dict[str, Cell], dict[str, Cell], dict[str, int]]:
    """Rolled cells per task, model and language, and records per cache outcome."""
    by_task: dict[str, Cell] = {}
    by_model: dict[str, Cell] = {}
    by_language: dict[str, Cell] = {}
    cache: dict[str, int] = {}
    for (dim, a, b), cell in rolled.cells.items():
        if dim == "tm":
            by_task.setdefault(a, Cell()).add(cell)
            by_model.setdefault(b, Cell()).add(cell)
        elif dim == "lang":
            by_language.setdefault(a, Cell()).add(cell)
        else:
            cache[b] = cache.get(b, 0) + cell.sums.requests
    return by_task, by_model, by_language, cache


def _cell_object(name: str, cell: Cell, *, latency: bool = True) -> dict[str, Any]:
    group = Group(name, cell.sums, cell.percentiles() if latency else Latency())
    out = _group(group)
    if latency:
        ttft = cell.ttft_percentiles()
        out.update({"p50_ttft_ms": ttft.p50, "p95_ttft_ms": ttft.p95})
    return out


def _ranked(cells: dict[str, Cell], *, latency: bool = True) -> list[dict[str, Any]]:
    """Groups by spend, highest first (ties by name), as the report orders them."""
    ordered = sorted(cells.items(), key=lambda item: (-item[1].sums.cost_usd, item[0]))
    return [_cell_object(name, cell, latency=latency) for name, cell in ordered]


def _point(bucket_s: int, number: int, cell: Cell) -> dict[str, Any]:
    """One time bucket of the charts: spend and savings, and latency and TTFT percentiles."""
    latency, ttft = cell.percentiles(), cell.ttft_percentiles()
    return {
        "t": float(number * bucket_s),
        "requests": cell.sums.requests,
        "errors": cell.sums.errors,
        "cost_usd": cell.sums.cost_usd,
        "baseline_cost_usd": cell.sums.baseline_cost_usd,
        "saved_usd": dict(cell.sums.saved_usd),
        "p50_latency_ms": latency.p50,
        "p95_latency_ms": latency.p95,
        "p50_ttft_ms": ttft.p50,
        "p95_ttft_ms": ttft.p95,
    }


def top_prompts(store: LedgerStore, window: Window, limit: int = 10) -> dict[str, Any]:
    """``{"data": [...]}``: the prompts (by hash) with the highest spend in the window (one raw ``GROUP BY``)."""
    return {"data": _top_prompts(store, window, limit)}


def _top_prompts(store: LedgerStore, window: Window, limit: int) -> list[dict[str, Any]]:
    statement, params = sql.top_prompts(limit, window, store.dialect, ts_index=True, with_text=False)
    with rollup_query.reading(store):
        conn = store.connect()
        try:
            rows = conn.execute(statement, params).fetchall()
        finally:
            conn.close()
    return [
        {"prompt_hash": str(h), "requests": int(n), "cost_usd": float(cost or 0.0), "tokens": int(tokens or 0)}
        for h, n, cost, tokens in rows
    ]


def empty_overview() -> dict[str, Any]:
    """The overview of a ledger with no records yet."""
    report = Report(ReportQuery(), "", [], Group("total", Sums()))
    return {
        "total": _group(report.total),
        "levers": list(LEVERS),
        "by_task": [],
        "by_model": [],
        "by_language": [],
        "bucket_s": 3600,
        "series": [],
        "cache": {},
    }


def advice(store: LedgerStore, config: GatewayConfig, window: Window) -> dict[str, Any]:
    """The advisor's ranked recommendations for the window."""
    # Imported on first use: the advisor brings numpy and rich, which the serving process needs for
    # nothing else (they would add ~15 MB to every gateway process's idle memory).
    from tokenomy.advise.advisor import advise

    return advise(store, config, window).to_json()


def requests(store: LedgerStore, window: Window, filters: Filters, limit: int, offset: int) -> dict[str, Any]:
    """One page of the explorer plus the number of matching records."""
    return {
        "total": explorer.count(store, window, filters),
        "data": explorer.requests(store, window, filters, limit, offset),
    }


def requests_csv(store: LedgerStore, window: Window, filters: Filters) -> str:
    """The matching records as CSV (newest first, at most :data:`CSV_LIMIT`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [name for name, _ in explorer.LIST_COLUMNS]
    writer.writerow(names)
    for row in explorer.requests(store, window, filters, CSV_LIMIT):
        writer.writerow(["" if row[n] is None else _csv_safe(row[n]) for n in names])
    return out.getvalue()


def _csv_safe(value: object) -> object:
    """Text cells starting with = + - @ are prefixed with ' so spreadsheets do not run them as formulas."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
