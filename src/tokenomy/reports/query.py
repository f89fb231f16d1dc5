"""Running the report queries against a ledger store and assembling a :class:`Report`.

One ``GROUP BY`` over every dimension the report needs (the ``--by`` one, task and language for
the token economy, the time bucket for the cost plot) is rolled up per dimension here; latency
percentiles and the top prompts are separate queries. The queries run on their own connections
in parallel threads (sqlite3 and psycopg release the GIL while the database works).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

from tokenomy.ledger.record import LEVERS
from tokenomy.ledger.schema import Dialect
from tokenomy.ledger.stores.base import LedgerStore, StoreUnavailable
from tokenomy.reports import sql
from tokenomy.reports.model import Group, Latency, PromptRow, Report, ReportQuery, Sums
from tokenomy.reports.percentiles import grouped
from tokenomy.reports.price_summary import price_summary
from tokenomy.reports.timeparse import utc_day

HOURLY_SPAN_S = 2 * 86400
"""Windows with at most this much data between the first and last record plot hourly, others daily."""

INDEX_SHARE = 0.25
"""SQLite uses the ``ts`` index only when the window holds less than this share of the records."""


class ReportError(Exception):
    """The ledger cannot be read; the message is one line, fit for the user."""


class ProgressSink(Protocol):
    """Where the query reports its steps (the CLI shows them on stderr)."""

    def start(self, steps: Sequence[str]) -> None:
        """The steps about to run."""

    def finish(self, step: str) -> None:
        """A step is done."""


class _Silent:
    def start(self, steps: Sequence[str]) -> None:
        pass

    def finish(self, step: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Plan:
    ts_index: bool
    bucket_s: int


def one_line(text: str) -> str:
    """Collapse whitespace and newlines (database messages often span lines)."""
    return " ".join(text.split())


def run_query(store: LedgerStore, query: ReportQuery, progress: ProgressSink | None = None) -> Report:
    """Query ``store`` and assemble the report; raises :class:`ReportError`."""
    sink = progress or _Silent()
    errors = db_errors(store.dialect)
    try:
        return _run(store, query, sink)
    except StoreUnavailable as exc:
        raise ReportError(one_line(str(exc))) from None
    except errors as exc:
        hint = " (is it a Tokenomy ledger?)" if "requests" in str(exc) else ""
        raise ReportError(one_line(f"cannot read the ledger {store.description}: {exc}{hint}")) from None


def db_errors(dialect: Dialect) -> tuple[type[Exception], ...]:
    """The exception types a query on a ``dialect`` store raises."""
    if dialect == "postgres":
        import psycopg

        return (sqlite3.Error, psycopg.Error)
    return (sqlite3.Error,)


@contextlib.contextmanager
def _connection(store: LedgerStore) -> Iterator[Any]:
    conn = store.connect()
    try:
        yield conn
    finally:
        conn.close()


def _fetch(store: LedgerStore, statement: tuple[str, list[object]]) -> list[tuple[Any, ...]]:
    text, params = statement
    with _connection(store) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(text, params).fetchall()
        return rows


def _plan(store: LedgerStore, query: ReportQuery) -> _Plan:
    """Cheap index lookups that shape the big queries: index or scan, hourly or daily buckets."""
    window, dialect = query.window, store.dialect
    ts_index, bucket_s = True, 86400
    with _connection(store) as conn:
        if dialect == "sqlite" and (window.since is not None or window.until is not None):
            # max(rowid): the record count (an upper bound if rows were ever deleted) without a scan
            total = int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM requests").fetchone()[0])
            limit = int(INDEX_SHARE * total) + 1
            text, params = sql.count_up_to(limit, window, dialect)
            ts_index = int(conn.execute(text, params).fetchone()[0]) < limit
        if query.sections.series:
            first, last, params = sql.first_and_last(window, dialect)
            lo, hi = conn.execute(first, params).fetchone(), conn.execute(last, params).fetchone()
            if lo is not None and hi is not None and float(hi[0]) - float(lo[0]) <= HOURLY_SPAN_S:
                bucket_s = 3600
    return _Plan(ts_index, bucket_s)


def _run(store: LedgerStore, query: ReportQuery, sink: ProgressSink) -> Report:
    dialect, window, sections = store.dialect, query.window, query.sections
    sink.start(["plan"])
    plan = _plan(store, query)
    sink.finish("plan")
    by_dim = sql.group_sql(query.by, dialect)
    dims = [by_dim]
    roles = {"by": 0}
    wanted = {"task": sql.group_sql("task", dialect), "language": sql.group_sql("language", dialect)}
    if sections.economy:
        for role, dim in wanted.items():
            roles[role] = _index(dims, dim)
    if sections.series:
        roles["series"] = _index(dims, sql.bucket_sql(plan.bucket_s, dialect))

    jobs: dict[str, Callable[[], Any]] = {
        "sum records": lambda: _fetch(store, sql.cube(dims, window, dialect, ts_index=plan.ts_index)),
        "latency percentiles": lambda: _latency(store, by_dim, query, plan),
    }
    jobs["price sources"] = lambda: _fetch(store, sql.price_sources(window, dialect))
    if sections.top_prompts > 0:
        with_text = sections.show_prompts
        statement = sql.top_prompts(sections.top_prompts, window, dialect, ts_index=plan.ts_index, with_text=with_text)
        jobs["top prompts"] = lambda: _fetch(store, statement)
    results = _parallel(jobs, sink)

    rolled = _roll_up(results["sum records"], len(dims), roles)
    latency, overall = results["latency percentiles"]
    groups = [Group(_name(key, query.by), sums, latency.get(key, Latency())) for key, sums in rolled["by"].items()]
    groups.sort(key=(lambda g: g.name) if query.by == "day" else (lambda g: (-g.sums.cost_usd, g.name)))
    total = Sums()
    for group in groups:
        total.add(group.sums)
    report = Report(
        query=query,
        source=store.description,
        groups=groups,
        total=Group("total", total, overall),
        bucket_s=plan.bucket_s,
        generated_at=time.time(),
    )
    if sections.economy:
        report.by_task = _economy(rolled["task"])
        report.by_language = _economy(rolled["language"])
    if sections.series:
        series = [(float(int(key) * plan.bucket_s), sums) for key, sums in rolled["series"].items()]
        report.series = sorted(series, key=lambda item: item[0])
    report.prices, report.comparison = price_summary(results["price sources"], query.compare_with)
    if "top prompts" in results:
        report.top_prompts = [_prompt(row, sections.show_prompts) for row in results["top prompts"]]
    return report


def _index(dims: list[str], dim: str) -> int:
    """The position of ``dim`` in ``dims``, appending it if new (a dimension is grouped on once)."""
    if dim not in dims:
        dims.append(dim)
    return dims.index(dim)


def _parallel(jobs: dict[str, Callable[[], Any]], sink: ProgressSink) -> dict[str, Any]:
    sink.start(list(jobs))
    results: dict[str, Any] = {}
    # one query per core: more only make them fight over the cores (the longest job is submitted first)
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tokenomy-report") as pool:
        futures: dict[Future[Any], str] = {pool.submit(job): name for name, job in jobs.items()}
        try:
            for future in as_completed(futures):
                name = futures[future]
                results[name] = future.result()
                sink.finish(name)
        finally:
            for future in futures:
                future.cancel()
    return results


def _latency(store: LedgerStore, dim: str, query: ReportQuery, plan: _Plan) -> tuple[dict[Hashable, Latency], Latency]:
    """Percentiles per raw group key, and over the whole window."""
    if store.dialect == "postgres":
        rows = _fetch(store, sql.percentiles(dim, query.window))
        per_group: dict[Hashable, Latency] = {}
        overall = Latency()
        for key, *values in rows:
            latency = Latency(*(None if v is None else float(v) for v in values))
            if key is None:
                overall = latency
            else:
                per_group[key] = latency
        return per_group, overall
    return grouped(_fetch(store, sql.latencies(dim, query.window, "sqlite", ts_index=plan.ts_index)))


def sums_of(values: Sequence[Any]) -> Sums:
    """A :class:`Sums` from a row of :data:`~tokenomy.reports.sql.SUM_COLUMNS` values, optionally followed by
    the ``FINISH_COLUMNS`` and then the ``CASCADE_COLUMNS`` values (rollup rows stop after the levers)."""
    requests, errors, prompt, completion, cached, cost, baseline, *rest = values
    saved, extra = rest[: len(LEVERS)], rest[len(LEVERS) :]
    finished, length_stops = extra[0:2] if len(extra) >= 2 else (0, 0)
    cascade, first_step = extra[2:4] if len(extra) >= 4 else (0, 0)
    return Sums(
        requests=int(requests),
        errors=int(errors or 0),
        prompt_tokens=int(prompt or 0),
        completion_tokens=int(completion or 0),
        cached_tokens=int(cached or 0),
        cost_usd=float(cost or 0.0),
        baseline_cost_usd=float(baseline or 0.0),
        saved_usd={lever: float(v or 0.0) for lever, v in zip(LEVERS, saved, strict=True)},
        finished=int(finished or 0),
        length_stops=int(length_stops or 0),
        cascade_requests=int(cascade or 0),
        first_step_answers=int(first_step or 0),
    )


def _roll_up(rows: list[tuple[Any, ...]], n_dims: int, roles: dict[str, int]) -> dict[str, dict[Any, Sums]]:
    """Per role, the sums of the cube's rows by that role's dimension (keys as the database returned them)."""
    out: dict[str, dict[Any, Sums]] = {role: {} for role in roles}
    for row in rows:
        sums = sums_of(row[n_dims:])
        for role, i in roles.items():
            acc = out[role].get(row[i])
            if acc is None:
                out[role][row[i]] = acc = Sums()
            acc.add(sums)
    return out


def _name(key: Hashable, by: str) -> str:
    """A group's label: ``day`` groups are day numbers in the query."""
    if by == "day" and isinstance(key, int):
        return utc_day(key)
    return str(key)


def _economy(sums_by: dict[Hashable, Sums]) -> list[Group]:
    groups = [Group(str(key), sums) for key, sums in sums_by.items()]
    groups.sort(key=lambda g: (-g.sums.cost_usd, g.name))
    return groups


def _prompt(row: tuple[Any, ...], show: bool) -> PromptRow:
    prompt_hash, requests, cost, tokens, *text = row
    prompt = text[0] if show and text else None
    return PromptRow(str(prompt_hash), int(requests), float(cost or 0.0), int(tokens or 0), prompt)
