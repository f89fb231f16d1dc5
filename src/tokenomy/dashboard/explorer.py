"""The requests explorer's queries: filtered pages of ledger records, one record, and filter choices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenomy.dashboard import rollup_query
from tokenomy.ledger.record import COLUMNS, LEVERS
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports.model import Window
from tokenomy.reports.sql import bucket_sql, placeholder, where

MODEL = "COALESCE(served_model, requested_model)"
LIST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "request_id"),
    ("ts", "ts"),
    ("task", "task"),
    ("model", MODEL),
    ("key", "api_key"),
    ("tenant", "tenant"),
    ("status", "status"),
    ("cache", "cache"),
    ("route", "route"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("cost_usd", "cost_usd"),
    ("baseline_cost_usd", "baseline_cost_usd"),
    ("latency_ms", "latency_ms"),
)
"""The explorer's columns: (name in the API, SQL expression)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Equality filters on top of the time window (``None``: any)."""

    task: str | None = None
    model: str | None = None
    key: str | None = None
    status: str | None = None  # "ok" (< 400) or "error" (>= 400)


def _where(store: LedgerStore, window: Window, filters: Filters) -> tuple[str, list[object]]:
    mark = placeholder(store.dialect)
    extra: list[str] = []
    params: list[object] = []
    for value, column in ((filters.task, "task"), (filters.model, MODEL), (filters.key, "api_key")):
        if value is not None:
            extra.append(f"{column} = {mark}")
            params.append(value)
    if filters.status == "ok":
        extra.append("status < 400")
    elif filters.status == "error":
        extra.append("status >= 400")
    clause, window_params = where(window, store.dialect, extra=tuple(extra))
    return clause, [*params, *window_params]  # where() puts the extra conditions first


def _rows(store: LedgerStore, sql: str, params: list[object]) -> list[Any]:
    conn = store.connect()
    try:
        rows: list[Any] = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    return rows


def requests(store: LedgerStore, window: Window, filters: Filters, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """The newest matching records first, as dicts of :data:`LIST_COLUMNS`."""
    clause, params = _where(store, window, filters)
    select = ", ".join(expr for _, expr in LIST_COLUMNS)
    sql = f"SELECT {select} FROM requests{clause} ORDER BY ts DESC LIMIT {int(limit)} OFFSET {int(offset)}"
    names = [name for name, _ in LIST_COLUMNS]
    return [dict(zip(names, row, strict=True)) for row in _rows(store, sql, params)]


def count(store: LedgerStore, window: Window, filters: Filters) -> int:
    """How many records match."""
    clause, params = _where(store, window, filters)
    return int(_rows(store, f"SELECT COUNT(*) FROM requests{clause}", params)[0][0])


def record(store: LedgerStore, window: Window, request_id: str, *, with_prompt: bool) -> dict[str, Any] | None:
    """One record's every column (the prompt text only ``with_prompt``), within the viewer's tenant."""
    mark = placeholder(store.dialect)
    clause, params = where(Window(tenant=window.tenant), store.dialect, extra=(f"request_id = {mark}",))
    columns = [c for c in COLUMNS if with_prompt or c != "prompt"]
    rows = _rows(store, f"SELECT {', '.join(columns)} FROM requests{clause}", [request_id, *params])
    if not rows:
        return None
    out = dict(zip(columns, rows[0], strict=True))
    out["stream"] = bool(out["stream"])
    return out


def choices(store: LedgerStore, window: Window, limit: int = 200) -> dict[str, list[str]]:
    """Distinct tasks, models and keys in the window (for the filter menus), most used first.

    Read from the hourly rollup's task-and-model and key rows (raw records only for the partial hours at
    the window's edges), so the cost follows the hours and names in the window, not its records.
    """
    found: dict[str, dict[str, int]] = {"task": {}, "model": {}, "key": {}}
    for (dim, a, b), n in rollup_query.counts(store, window, ("tm", "key")).items():
        names = (("task", a), ("model", b)) if dim == "tm" else (("key", a),)
        for menu, name in names:
            if name:  # a record without a key has an empty one in the rollup
                found[menu][name] = found[menu].get(name, 0) + n
    return {
        menu: [name for name, _ in sorted(seen.items(), key=lambda item: (-item[1], item[0]))[: int(limit)]]
        for menu, seen in found.items()
    }


def cache_outcomes(store: LedgerStore, window: Window) -> dict[str, int]:
    """Records per cache outcome (hit-exact, hit-semantic, miss, coalesced, bypass, none)."""
    clause, params = where(window, store.dialect)
    return {str(k): int(n) for k, n in _rows(store, f"SELECT cache, COUNT(*) FROM requests{clause} GROUP BY 1", params)}


BUCKETS_S = (1, 5, 15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
"""Time buckets of the cost chart: the finest giving at most :data:`MAX_BUCKETS` over the data's span."""
MAX_BUCKETS = 120


def series(store: LedgerStore, window: Window) -> tuple[int, list[dict[str, Any]]]:
    """Cost, baseline and savings by lever per time bucket, at a resolution fitting the data's own span."""
    clause, params = where(window, store.dialect)
    found = _rows(store, f"SELECT MIN(ts), MAX(ts) FROM requests{clause}", params)
    if not found or found[0][0] is None:
        return 60, []
    span = float(found[0][1]) - float(found[0][0])
    bucket = next((b for b in BUCKETS_S if span / b <= MAX_BUCKETS), BUCKETS_S[-1])
    number = bucket_sql(bucket, store.dialect) if bucket != 1 else _floor("ts", store.dialect)
    sums = ", ".join(["SUM(cost_usd)", "SUM(baseline_cost_usd)", *(f"SUM(saved_{lever}_usd)" for lever in LEVERS)])
    rows = _rows(store, f"SELECT {number}, COUNT(*), {sums} FROM requests{clause} GROUP BY 1 ORDER BY 1", params)
    out = []
    for key, requests, cost, baseline, *saved in rows:
        out.append(
            {
                "t": float(int(key) * bucket),
                "requests": int(requests),
                "cost_usd": float(cost or 0.0),
                "baseline_cost_usd": float(baseline or 0.0),
                "saved_usd": {lever: float(v or 0.0) for lever, v in zip(LEVERS, saved, strict=True)},
            }
        )
    return bucket, out


def _floor(column: str, dialect: str) -> str:
    return f"CAST({column} AS INTEGER)" if dialect == "sqlite" else f"CAST(floor({column}) AS BIGINT)"
