"""The overview's sums and percentiles from the hourly rollup, plus raw records for the partial hours.

A window ``[since, until)`` splits into whole UTC hours, read from ``requests_rollup`` (see
:mod:`tokenomy.ledger.rollup`), and the partial hours at its two edges, aggregated from the raw
records with the same ``SELECT`` the rollup is built with. Sums are exact (they equal the report's);
latency and TTFT percentiles are read from histograms (within a factor 1.26 of the exact ones).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tokenomy.ledger import rollup
from tokenomy.ledger.stores.base import LedgerStore, StoreUnavailable
from tokenomy.reports.model import Latency, Sums, Window
from tokenomy.reports.query import ReportError, db_errors, one_line, sums_of
from tokenomy.reports.sql import placeholder

BUCKETS_S = (1, 5, 15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
"""Time buckets of the charts: the finest giving at most :data:`MAX_BUCKETS` over the data's span."""
MAX_BUCKETS = 120
_N_SUMS = len(rollup.SUMS)


@dataclass(slots=True)
class Cell:
    """Sums plus latency and TTFT histograms of one group."""

    sums: Sums = field(default_factory=Sums)
    latency: list[int] = field(default_factory=lambda: [0] * rollup.BUCKETS)
    ttft: list[int] = field(default_factory=lambda: [0] * rollup.BUCKETS)

    def add_row(self, values: tuple[Any, ...]) -> None:
        """Add a row of :data:`rollup.SUMS` values, optionally followed by both histograms."""
        self.sums.add(sums_of(values[:_N_SUMS]))
        hist = values[_N_SUMS:]
        if hist:
            for i in range(rollup.BUCKETS):
                self.latency[i] += int(hist[i] or 0)
                self.ttft[i] += int(hist[rollup.BUCKETS + i] or 0)

    def add(self, other: Cell) -> None:
        """Add another cell into this one."""
        self.sums.add(other.sums)
        for i in range(rollup.BUCKETS):
            self.latency[i] += other.latency[i]
            self.ttft[i] += other.ttft[i]

    def percentiles(self) -> Latency:
        """Latency p50, p95, p99 from the histogram."""
        return Latency(*(rollup.percentile(self.latency, q) for q in (50.0, 95.0, 99.0)))

    def ttft_percentiles(self) -> Latency:
        """TTFT p50, p95, p99 from the histogram (``None`` without streamed records)."""
        return Latency(*(rollup.percentile(self.ttft, q) for q in (50.0, 95.0, 99.0)))


@dataclass(slots=True)
class Rolled:
    """The window's cells: per (dim, a, b), and per time bucket (``tm`` rows only)."""

    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    series: dict[int, Cell] = field(default_factory=dict)
    bucket_s: int = 3600
    first: float | None = None
    last: float | None = None

    def cell(self, key: tuple[str, str, str]) -> Cell:
        """The cell of ``key``, created empty if new."""
        found = self.cells.get(key)
        if found is None:
            self.cells[key] = found = Cell()
        return found

    def bucket(self, number: int) -> Cell:
        """The series cell of a bucket number, created empty if new."""
        found = self.series.get(number)
        if found is None:
            self.series[number] = found = Cell()
        return found


@dataclass(frozen=True, slots=True)
class _Split:
    hours: tuple[int | None, int | None] | None  # whole hours [lo, hi) from the rollup (None bound: open)
    edges: tuple[tuple[float | None, float | None], ...]  # raw ranges [since, until)


def split(window: Window) -> _Split:
    """Whole hours inside the window, and the raw ranges left at its edges."""
    since, until = window.since, window.until
    lo = None if since is None else math.ceil(since / rollup.HOUR_S)
    hi = None if until is None else math.floor(until / rollup.HOUR_S)
    if lo is not None and hi is not None and lo >= hi:
        return _Split(None, ((since, until),))
    edges: list[tuple[float | None, float | None]] = []
    if since is not None and lo is not None and since < lo * rollup.HOUR_S:
        edges.append((since, float(lo * rollup.HOUR_S)))
    if until is not None and hi is not None and hi * rollup.HOUR_S < until:
        edges.append((float(hi * rollup.HOUR_S), until))
    return _Split((lo, hi), tuple(edges))


@contextmanager
def reading(store: LedgerStore) -> Iterator[None]:
    """Turn a store that cannot be read into a one-line :class:`~tokenomy.reports.query.ReportError`."""
    try:
        yield
    except StoreUnavailable as exc:
        raise ReportError(one_line(str(exc))) from None
    except db_errors(store.dialect) as exc:
        raise ReportError(one_line(f"cannot read the ledger {store.description}: {exc}")) from None


def read(store: LedgerStore, window: Window) -> Rolled:
    """Every cell of the window, and the per-bucket series at a resolution fitting the data's span.

    Raises :class:`~tokenomy.reports.query.ReportError` when the ledger cannot be read.
    """
    with reading(store):
        return _read(store, window)


def _read(store: LedgerStore, window: Window) -> Rolled:
    parts = split(window)
    out = Rolled()
    conn = store.connect()
    try:
        first, last = _span(conn, store, window, parts)
        if first is None or last is None:
            return out
        out.first, out.last = first, last
        bucket = next((b for b in BUCKETS_S if (last - first) / b <= MAX_BUCKETS), BUCKETS_S[-1])
        out.bucket_s = bucket
        fine = bucket < rollup.HOUR_S
        if parts.hours is not None:
            _from_rollup(conn, store, window, parts.hours, out, series=not fine)
        for since, until in parts.edges:
            _from_raw(conn, store, Window(since, until, window.tenant), out, series=not fine)
        if fine:  # sub-hour buckets: only the raw records have them (the data spans at most 30 hours)
            _raw_series(conn, store, window, out)
    finally:
        conn.close()
    return out


def rollup_where(store: LedgerStore, window: Window, hours: tuple[int | None, int | None]) -> tuple[str, list[object]]:
    """The condition (no ``WHERE``) selecting rollup rows of whole ``hours`` ``[lo, hi)`` and the window's tenant."""
    return _where(store, "1 = 1", "hour", hours, window.tenant)


def raw_where(store: LedgerStore, window: Window) -> tuple[str, list[object]]:
    """The condition (no ``WHERE``) selecting the window's production records (no shadow copies)."""
    return _where(store, "shadow_of IS NULL", "ts", (window.since, window.until), window.tenant)


def _where(
    store: LedgerStore, base: str, column: str, span: tuple[object | None, object | None], tenant: str | None
) -> tuple[str, list[object]]:
    """``base`` AND ``column`` in ``[lo, hi)`` (either end open when None) AND the tenant, with its parameters."""
    mark = placeholder(store.dialect)
    conditions: list[str] = [base]
    params: list[object] = []
    for op, value in zip((">=", "<"), span, strict=True):
        if value is not None:
            conditions.append(f"{column} {op} {mark}")
            params.append(value)
    if tenant is not None:
        conditions.append(f"tenant = {mark}")
        params.append(tenant)
    return " AND ".join(conditions), params


def _span(conn: Any, store: LedgerStore, window: Window, parts: _Split) -> tuple[float | None, float | None]:
    """The first and last record time in the window (index lookups; one hour of raw rows at most)."""
    found: list[float] = []
    for since, until in parts.edges:
        clause, params = raw_where(store, Window(since, until, window.tenant))
        lo, hi = conn.execute(f"SELECT MIN(ts), MAX(ts) FROM requests WHERE {clause}", params).fetchone()
        found += [float(v) for v in (lo, hi) if v is not None]
    if parts.hours is not None:
        clause, params = rollup_where(store, window, parts.hours)
        lo, hi = conn.execute(f"SELECT MIN(hour), MAX(hour) FROM {rollup.TABLE} WHERE {clause}", params).fetchone()
        for hour in (lo, hi):
            if hour is None:
                continue
            start = int(hour) * rollup.HOUR_S
            clause, params = raw_where(store, Window(float(start), float(start + rollup.HOUR_S), window.tenant))
            row = conn.execute(f"SELECT MIN(ts), MAX(ts) FROM requests WHERE {clause}", params).fetchone()
            found += [float(v) for v in row if v is not None]
    return (min(found), max(found)) if found else (None, None)


def _from_rollup(
    conn: Any, store: LedgerStore, window: Window, hours: tuple[int | None, int | None], out: Rolled, *, series: bool
) -> None:
    clause, params = rollup_where(store, window, hours)
    sums = ", ".join(f"SUM({name})" for name, _ in rollup.SUMS)
    hist = ", ".join(f"SUM({c})" for c in (*rollup.LATENCY, *rollup.TTFT))
    # histograms are kept on task-and-model rows only: the other kinds are summed without them
    for kinds, measures in (("= 'tm'", f"{sums}, {hist}"), ("IN ('lang', 'cache')", sums)):
        statement = f"SELECT dim, a, b, {measures} FROM {rollup.TABLE} WHERE {clause} AND dim {kinds} GROUP BY 1, 2, 3"
        for dim, a, b, *values in conn.execute(statement, params).fetchall():
            out.cell((str(dim), str(a), str(b))).add_row(tuple(values))
    if not series:
        return
    per = out.bucket_s // rollup.HOUR_S
    number = f"hour / {per}" if store.dialect == "sqlite" else f"floor(hour / {per})::BIGINT"
    rows = conn.execute(
        f"SELECT {number}, {sums}, {hist} FROM {rollup.TABLE} WHERE {clause} AND dim = 'tm' GROUP BY 1", params
    ).fetchall()
    for key, *values in rows:
        out.bucket(int(key)).add_row(tuple(values))


def _aggregates(conn: Any, store: LedgerStore, window: Window, seconds: int) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Raw records of the window aggregated as the rollup is, per ``seconds`` bucket: (dim, row)."""
    clause, params = raw_where(store, window)
    for dim in rollup.V4_DIMS:
        statement = rollup.aggregate(dim, "requests", clause, store.dialect, seconds=seconds)
        for row in conn.execute(statement, params).fetchall():
            yield dim, tuple(row)


def _from_raw(conn: Any, store: LedgerStore, window: Window, out: Rolled, *, series: bool) -> None:
    for dim, (number, _tenant, a, b, *values) in _aggregates(conn, store, window, out.bucket_s):
        cell = Cell()
        cell.add_row(tuple(values))
        out.cell((dim, str(a), str(b))).add(cell)
        if series and dim == "tm":
            out.bucket(int(number)).add(cell)


def _raw_series(conn: Any, store: LedgerStore, window: Window, out: Rolled) -> None:
    """Sums per bucket, then latency and TTFT histograms as (bucket, histogram bucket, count) rows."""
    clause, params = raw_where(store, window)
    number = rollup.hour_sql(store.dialect, out.bucket_s)
    sums = ", ".join(expr for _, expr in rollup.SUMS)
    for key, *values in conn.execute(f"SELECT {number}, {sums} FROM requests WHERE {clause} GROUP BY 1", params):
        out.bucket(int(key)).add_row(tuple(values))
    for column, attr in (("latency_ms", "latency"), ("ttft_ms", "ttft")):
        inner = f"SELECT {number} AS n, {rollup.bucket_sql(column, store.dialect)} AS h FROM requests WHERE {clause}"
        statement = f"SELECT n, h, COUNT(*) FROM ({inner}) AS r WHERE h IS NOT NULL GROUP BY 1, 2"
        for key, index, count in conn.execute(statement, params).fetchall():
            getattr(out.bucket(int(key)), attr)[int(index)] += int(count)


def counts(store: LedgerStore, window: Window, dims: tuple[rollup.Dim, ...]) -> dict[tuple[str, str, str], int]:
    """Records per ``(dim, a, b)`` in the window: whole hours from the rollup, the edges from raw records.

    Raises :class:`~tokenomy.reports.query.ReportError` when the ledger cannot be read.
    """
    parts = split(window)
    out: dict[tuple[str, str, str], int] = {}
    with reading(store):
        conn = store.connect()
        try:
            if parts.hours is not None:
                clause, params = rollup_where(store, window, parts.hours)
                kinds = ", ".join(f"'{dim}'" for dim in dims)
                statement = f"SELECT dim, a, b, SUM(requests) FROM {rollup.TABLE} WHERE {clause} AND dim IN ({kinds})"
                for dim, a, b, n in conn.execute(f"{statement} GROUP BY 1, 2, 3", params).fetchall():
                    out[(str(dim), str(a), str(b))] = int(n or 0)
            for since, until in parts.edges:
                clause, params = raw_where(store, Window(since, until, window.tenant))
                for dim in dims:
                    statement = rollup.aggregate(dim, "requests", clause, store.dialect)
                    for _hour, _tenant, a, b, n, *_ in conn.execute(statement, params).fetchall():
                        key = (dim, str(a), str(b))
                        out[key] = out.get(key, 0) + int(n)
        finally:
            conn.close()
    return out
