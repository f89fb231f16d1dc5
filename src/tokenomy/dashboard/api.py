"""The dashboard's JSON documents, assembled from the report, advisor and explorer queries (blocking:
the routes run them in a worker thread)."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tokenomy.advise.advisor import advise
from tokenomy.config.models import GatewayConfig
from tokenomy.dashboard import explorer
from tokenomy.dashboard.explorer import Filters
from tokenomy.ledger.record import LEVERS
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports.formats import group_object
from tokenomy.reports.model import Group, Report, ReportQuery, Sections, Sums, Window
from tokenomy.reports.query import run_query

CSV_LIMIT = 100_000
"""Rows a CSV export holds at most (the newest first)."""


def _group(group: Group) -> dict[str, Any]:
    return {**group_object(group), "saved_total_usd": group.sums.saved_total_usd}


def overview(store: LedgerStore, window: Window) -> dict[str, Any]:
    """Totals, savings by lever, per-task and per-model groups, time series, token economy, top prompts."""
    # four independent queries on their own connections (the databases release the GIL while they work)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="tokenomy-dashboard") as pool:
        task_job = pool.submit(run_query, store, ReportQuery("task", window, Sections(economy=True, top_prompts=10)))
        model_job = pool.submit(run_query, store, ReportQuery("model", window))
        series_job = pool.submit(explorer.series, store, window)
        cache_job = pool.submit(explorer.cache_outcomes, store, window)
        by_task, by_model = task_job.result(), model_job.result()
        (bucket_s, series), cache = series_job.result(), cache_job.result()
    return {
        "total": _group(by_task.total),
        "levers": list(LEVERS),
        "by_task": [_group(g) for g in by_task.groups],
        "by_model": [_group(g) for g in by_model.groups],
        "by_language": [_group(g) for g in by_task.by_language],
        "bucket_s": bucket_s,
        "series": series,
        "top_prompts": [
            {"prompt_hash": p.prompt_hash, "requests": p.requests, "cost_usd": p.cost_usd, "tokens": p.tokens}
            for p in by_task.top_prompts
        ],
        "cache": cache,
    }


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
        "top_prompts": [],
        "cache": {},
    }


def advice(store: LedgerStore, config: GatewayConfig, window: Window) -> dict[str, Any]:
    """The advisor's ranked recommendations for the window."""
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
