"""SQL text of the report queries, for SQLite and PostgreSQL.

Everything is aggregated in the database (``GROUP BY`` sums and counts); only latency
percentiles differ: PostgreSQL computes them with ``percentile_cont``, SQLite hands the latency
column to numpy (see :mod:`tokenomy.reports.percentiles`).

In SQLite a column wrapped as ``+task`` cannot use an index: a full scan plus one sort beats
walking the ``(task, ts)`` index and fetching every row from the table by rowid (about 2.5x).
"""

from __future__ import annotations

from tokenomy.ledger.record import LEVERS
from tokenomy.ledger.schema import Dialect
from tokenomy.reports.model import PERCENTILES, GroupBy, Window

_MODEL = "COALESCE(served_model, requested_model)"
_KEY = "COALESCE(api_key, '(none)')"
_LANGUAGE = "COALESCE(NULLIF(language, ''), 'unknown')"
_GROUP_SQL: dict[GroupBy, dict[Dialect, str]] = {
    "task": {"sqlite": "+task", "postgres": "task"},
    "model": {"sqlite": _MODEL, "postgres": _MODEL},
    "key": {"sqlite": _KEY, "postgres": _KEY},
    "tenant": {"sqlite": "tenant", "postgres": "tenant"},
    "team": {"sqlite": "tenant", "postgres": "tenant"},  # a key's team is its tenant
    "language": {"sqlite": _LANGUAGE, "postgres": _LANGUAGE},
    "day": {"sqlite": "CAST(ts / 86400 AS INTEGER)", "postgres": "CAST(floor(ts / 86400) AS BIGINT)"},
}

SUM_COLUMNS = (
    "COUNT(*)",
    "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)",
    "SUM(prompt_tokens)",
    "SUM(completion_tokens)",
    "SUM(cached_tokens)",
    "SUM(cost_usd)",
    "SUM(baseline_cost_usd)",
    *(f"SUM(saved_{lever}_usd)" for lever in LEVERS),
)
"""The additive measures, in :class:`~tokenomy.reports.model.Sums` field order (levers last)."""

FINISH_COLUMNS = (
    "SUM(CASE WHEN finish_reason IS NOT NULL THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN finish_reason = 'length' THEN 1 ELSE 0 END)",
)
"""Answers with a recorded finish reason, and those cut short at the output limit (after the levers)."""

CASCADE_COLUMNS = (
    # a cascade records its route as cascade:NAME->MODEL@STEP (then /INNER when the step routed again);
    # written without LIKE patterns, whose % psycopg would read as a parameter marker
    "SUM(CASE WHEN substr(route, 1, 8) = 'cascade:' THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN substr(route, 1, 8) = 'cascade:' AND replace(route || '/', '@0/', '') <> route || '/' "
    "THEN 1 ELSE 0 END)",
)
"""Requests a cascade served, and those its first step (a student) answered (after ``FINISH_COLUMNS``)."""


def placeholder(dialect: Dialect) -> str:
    """The DB-API parameter marker: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "?" if dialect == "sqlite" else "%s"


def group_sql(by: GroupBy, dialect: Dialect) -> str:
    """The expression a ``--by`` dimension groups on (``day`` is a day number, labelled later)."""
    return _GROUP_SQL[by][dialect]


def bucket_sql(seconds: int, dialect: Dialect) -> str:
    """The time bucket number of a record (``ts`` divided into ``seconds``-long buckets)."""
    if seconds == 86400:
        return _GROUP_SQL["day"][dialect]
    if dialect == "sqlite":
        return f"CAST(ts / {int(seconds)} AS INTEGER)"
    return f"CAST(floor(ts / {int(seconds)}) AS BIGINT)"


def where(
    window: Window, dialect: Dialect, *, ts_index: bool = True, extra: tuple[str, ...] = ()
) -> tuple[str, list[object]]:
    """`` WHERE ...`` for the window (empty when open) and its parameters.

    ``ts_index=False`` keeps SQLite off the ``ts`` index (faster when the window holds most rows).
    """
    column = "ts" if ts_index or dialect != "sqlite" else "+ts"
    mark = placeholder(dialect)
    conditions = ["shadow_of IS NULL", *extra]  # shadow copies are not production traffic (docs/evaluation.md)
    params: list[object] = []
    if window.since is not None:
        conditions.append(f"{column} >= {mark}")
        params.append(window.since)
    if window.until is not None:
        conditions.append(f"{column} < {mark}")
        params.append(window.until)
    if window.tenant is not None:  # the dashboard's tenant keys see only their tenant's records
        conditions.append(f"tenant = {mark}")
        params.append(window.tenant)
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def cube(dims: list[str], window: Window, dialect: Dialect, *, ts_index: bool) -> tuple[str, list[object]]:
    """Sums grouped by every dimension in ``dims`` at once (rolled up per dimension in Python)."""
    clause, params = where(window, dialect, ts_index=ts_index)
    positions = ", ".join(str(i + 1) for i in range(len(dims)))
    select = ", ".join([*dims, *SUM_COLUMNS, *FINISH_COLUMNS, *CASCADE_COLUMNS])
    return f"SELECT {select} FROM requests{clause} GROUP BY {positions}", params


def latencies(dim: str, window: Window, dialect: Dialect, *, ts_index: bool) -> tuple[str, list[object]]:
    """Every record's group and latency (SQLite: numpy computes the percentiles)."""
    clause, params = where(window, dialect, ts_index=ts_index)
    return f"SELECT {dim}, latency_ms FROM requests{clause}", params


def percentiles(dim: str, window: Window) -> tuple[str, list[object]]:
    """PostgreSQL: latency percentiles per group, plus a total row whose group is NULL (``ROLLUP``)."""
    clause, params = where(window, "postgres")
    cols = ", ".join(f"percentile_cont({p / 100}) WITHIN GROUP (ORDER BY latency_ms)" for p in PERCENTILES)
    return f"SELECT {dim}, {cols} FROM requests{clause} GROUP BY ROLLUP (({dim}))", params


def top_prompts(
    limit: int, window: Window, dialect: Dialect, *, ts_index: bool, with_text: bool
) -> tuple[str, list[object]]:
    """The ``limit`` prompts (by hash) with the highest total spend."""
    clause, params = where(window, dialect, ts_index=ts_index, extra=("prompt_hash IS NOT NULL",))
    text = ", MAX(prompt)" if with_text else ""
    sql = (
        f"SELECT prompt_hash, COUNT(*), SUM(cost_usd) AS spend, SUM(prompt_tokens + completion_tokens){text} "
        f"FROM requests{clause} GROUP BY prompt_hash ORDER BY spend DESC, prompt_hash LIMIT {int(limit)}"
    )
    return sql, params


def first_and_last(window: Window, dialect: Dialect) -> tuple[str, str, list[object]]:
    """Two index lookups: the earliest and the latest ``ts`` in the window."""
    clause, params = where(window, dialect)
    return (
        f"SELECT ts FROM requests{clause} ORDER BY ts LIMIT 1",
        f"SELECT ts FROM requests{clause} ORDER BY ts DESC LIMIT 1",
        params,
    )


def count_up_to(limit: int, window: Window, dialect: Dialect) -> tuple[str, list[object]]:
    """How many records the window holds, counting no further than ``limit`` (on the ``ts`` index)."""
    clause, params = where(window, dialect)
    return f"SELECT COUNT(*) FROM (SELECT 1 FROM requests{clause} LIMIT {int(limit)}) AS w", params


def price_sources(window: Window, dialect: Dialect) -> tuple[str, list[object]]:
    """Per price source and kind of call (1: embeddings): requests, spend and tokens of served requests."""
    clause, params = where(window, dialect)
    embed = "CASE WHEN endpoint = 'embeddings' THEN 1 ELSE 0 END"
    ok = "CASE WHEN status < 400 THEN {} ELSE 0 END"
    sql = (
        f"SELECT price_source, {embed}, COUNT(*), SUM(cost_usd), SUM({ok.format('prompt_tokens')}), "
        f"SUM({ok.format('completion_tokens')}) FROM requests{clause} GROUP BY 1, 2"
    )
    return sql, params
