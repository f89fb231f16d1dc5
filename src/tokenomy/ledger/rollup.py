"""Hourly rollups of the ledger: one table of pre-summed records the dashboard reads instead of raw rows.

``requests_rollup`` holds, per UTC hour and tenant, five kinds of rows (``dim``):

- ``tm``: per task and model (``a``, ``b``): every additive measure plus latency and TTFT histograms;
- ``lang``: per language (``a``; ``b`` empty): the additive measures;
- ``cache``: per task and cache outcome (``a``, ``b``): the additive measures;
- ``key`` (schema version 6): per API key (``a``, empty for none; ``b`` empty): the additive measures;
- ``use`` (schema version 6): successful records only (status < 400), per task (``a``) and model,
  deployment and provider (``b``, joined by :data:`SEP`): the additive measures plus streamed records and
  the first and last record time (what the advisor sums per deployment).

Finer grains (key crossed with task and model, language crossed with model) would multiply the rows
towards the raw count on mixed traffic, so those stay raw-row filters. Shadow copies are left out, as in
the reports.

The ledger stores keep the table in step in the same transaction as each batch of records (only the
records actually inserted are added, so a replayed batch adds nothing); schema migration 4 builds it
from the records already there. The same aggregate ``SELECT`` serves the dashboard for the partial
hours at a window's edges.

Histogram bucket ``i`` of a latency ``x`` ms is 0 for ``x < 1`` and ``min(LAST, floor(3 log2 x) + 1)``
otherwise: bucket ``i >= 1`` spans ``[2^((i-1)/3), 2^(i/3))`` ms, each a factor 1.26 wide, up to
``2^20`` ms (17.5 minutes); a percentile read from it is within that factor of the exact one.
"""

from __future__ import annotations

import math
import sqlite3
from typing import TYPE_CHECKING, Literal

from tokenomy.ledger.record import LEVERS

if TYPE_CHECKING:
    from tokenomy.ledger.schema import Dialect

TABLE = "requests_rollup"
HOUR_S = 3600
BUCKETS = 62
"""Histogram buckets per measure (see the module docstring)."""
PER_OCTAVE = 3

Dim = Literal["tm", "lang", "cache", "key", "use"]
DIMS: tuple[Dim, ...] = ("tm", "lang", "cache", "key", "use")
"""Every kind of row the stores keep."""
V4_DIMS: tuple[Dim, ...] = ("tm", "lang", "cache")
"""The kinds of row of schema version 4 (its migration builds only these; version 6 adds the others)."""
SEP = chr(31)
"""Joins model, deployment and provider in the ``b`` of a ``use`` row (the unit separator: in no name)."""

SUMS: tuple[tuple[str, str], ...] = (
    ("requests", "COUNT(*)"),
    ("errors", "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)"),
    ("prompt_tokens", "SUM(prompt_tokens)"),
    ("completion_tokens", "SUM(completion_tokens)"),
    ("cached_tokens", "SUM(cached_tokens)"),
    ("cost_usd", "SUM(cost_usd)"),
    ("baseline_cost_usd", "SUM(baseline_cost_usd)"),
    *((f"saved_{lever}_usd", f"SUM(saved_{lever}_usd)") for lever in LEVERS),
)
"""Additive measures: (rollup column, aggregate over ``requests``), in ``Sums`` field order."""

USE_EXTRA: tuple[tuple[str, str], ...] = (
    ("streamed", "SUM(CASE WHEN stream THEN 1 ELSE 0 END)"),
    ("first_ts", "MIN(ts)"),
    ("last_ts", "MAX(ts)"),
)
"""The columns only ``use`` rows fill (schema version 6): (rollup column, aggregate over ``requests``)."""

LATENCY = tuple(f"lat_{i}" for i in range(BUCKETS))
TTFT = tuple(f"ttft_{i}" for i in range(BUCKETS))

_MODEL = "COALESCE(served_model, requested_model)"
_KEYS = {
    "tm": ("task", _MODEL),
    "lang": ("COALESCE(NULLIF(language, ''), 'unknown')", "''"),
    "cache": ("task", "cache"),
    "key": ("COALESCE(api_key, '')", "''"),
}


def _keys(dim: Dim, dialect: Dialect) -> tuple[str, str]:
    if dim != "use":
        return _KEYS[dim]
    sep = "char(31)" if dialect == "sqlite" else "chr(31)"
    return "task", f"{_MODEL} || {sep} || COALESCE(deployment, '') || {sep} || COALESCE(provider, '')"


def hour_sql(dialect: Dialect, seconds: int = HOUR_S) -> str:
    """The number of the ``seconds``-long bucket a record's ``ts`` falls in."""
    if dialect == "sqlite":
        # CAST truncates toward zero; ts is positive, so this is floor
        return f"CAST(ts / {int(seconds)} AS INTEGER)"
    return f"CAST(floor(ts / {int(seconds)}) AS BIGINT)"


def bucket_sql(column: str, dialect: Dialect) -> str:
    """The histogram bucket of ``column`` (NULL stays NULL)."""
    if dialect == "sqlite":
        index = f"MIN({BUCKETS - 1}, CAST({PER_OCTAVE} * log2({column}) AS INTEGER) + 1)"
    else:
        index = f"LEAST({BUCKETS - 1}, CAST(floor({PER_OCTAVE} * ln({column}) / ln(2.0)) AS INTEGER) + 1)"
    return f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} < 1 THEN 0 ELSE {index} END"


def create_table(dialect: Dialect) -> list[str]:
    """The table and its key (the statements of migration 4 before the rebuild)."""
    real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    big = "INTEGER" if dialect == "sqlite" else "BIGINT"
    cols = [f"hour {big} NOT NULL", "tenant TEXT NOT NULL", "dim TEXT NOT NULL", "a TEXT NOT NULL", "b TEXT NOT NULL"]
    cols += [f"{name} {real if name.endswith('_usd') else big} NOT NULL DEFAULT 0" for name, _ in SUMS]
    cols += [f"{name} {big} NOT NULL DEFAULT 0" for name in (*LATENCY, *TTFT)]
    cols.append("PRIMARY KEY (hour, tenant, dim, a, b)")
    body = ",\n  ".join(cols)
    return [f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {body}\n)"]


def add_columns(dialect: Dialect) -> list[str]:
    """Schema version 6's new columns (filled by ``use`` rows only)."""
    real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    big = "INTEGER" if dialect == "sqlite" else "BIGINT"
    if_new = "IF NOT EXISTS " if dialect == "postgres" else ""
    add = f"ALTER TABLE {TABLE} ADD COLUMN {if_new}"
    return [f"{add}streamed {big} NOT NULL DEFAULT 0", f"{add}first_ts {real}", f"{add}last_ts {real}"]


def columns(dim: Dim) -> tuple[str, ...]:
    """The rollup columns a ``dim`` row fills (after its key)."""
    extra = (*LATENCY, *TTFT) if dim == "tm" else tuple(n for n, _ in USE_EXTRA) if dim == "use" else ()
    return (*(name for name, _ in SUMS), *extra)


def aggregate(dim: Dim, source: str, where: str, dialect: Dialect, *, seconds: int = HOUR_S) -> str:
    """``SELECT bucket_, tenant_, a_, b_, measures... FROM source WHERE ... GROUP BY ... ORDER BY ...``.

    ``source`` is ``requests`` or a set of just-inserted records; ``where`` a condition (no ``WHERE``);
    ``bucket_`` the number of the ``seconds``-long time bucket. Ordered by key so that concurrent
    writers lock rollup rows in the same order (no deadlock).
    """
    a, b = _keys(dim, dialect)
    measures = [f"{expr} AS {name}" for name, expr in SUMS]
    if dim == "use":  # the advisor reads only what was paid for and served
        measures += [f"{expr} AS {name}" for name, expr in USE_EXTRA]
        where = f"({where}) AND status < 400"
    if dim == "tm":
        lat, ttft = bucket_sql("latency_ms", dialect), bucket_sql("ttft_ms", dialect)
        measures += [f"SUM(CASE WHEN lb = {i} THEN 1 ELSE 0 END) AS {LATENCY[i]}" for i in range(BUCKETS)]
        measures += [f"SUM(CASE WHEN tb = {i} THEN 1 ELSE 0 END) AS {TTFT[i]}" for i in range(BUCKETS)]
        source = f"(SELECT *, {lat} AS lb, {ttft} AS tb FROM {source} WHERE {where}) AS r"
        where = "1 = 1"
    keys = [f"{hour_sql(dialect, seconds)} AS bucket_", "tenant AS tenant_", f"{a} AS a_", f"{b} AS b_"]
    select = ", ".join([*keys, *measures])
    # the WHERE also lets SQLite parse INSERT ... SELECT ... ON CONFLICT as an upsert
    return f"SELECT {select} FROM {source} WHERE {where} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"


def upsert(dim: Dim, source: str, where: str, dialect: Dialect) -> str:
    """Add the aggregate of ``source`` rows into the rollup (insert new keys, add into existing ones)."""
    cols = columns(dim)
    names = ", ".join(["hour", "tenant", "dim", "a", "b", *cols])
    merge = (
        {"first_ts": "min", "last_ts": "max"} if dialect == "sqlite" else {"first_ts": "LEAST", "last_ts": "GREATEST"}
    )
    updates = ", ".join(
        f"{c} = {merge[c]}({TABLE}.{c}, excluded.{c})" if c in merge else f"{c} = {TABLE}.{c} + excluded.{c}"
        for c in cols
    )
    return (
        f"INSERT INTO {TABLE} ({names}) SELECT bucket_, tenant_, '{dim}', a_, b_, {', '.join(cols)} FROM "
        f"({aggregate(dim, source, where, dialect)}) AS g WHERE 1 = 1 "
        f"ON CONFLICT (hour, tenant, dim, a, b) DO UPDATE SET {updates}"
    )


def maintain(dialect: Dialect, source: str, where: str, dims: tuple[Dim, ...] = DIMS) -> list[str]:
    """The statements adding ``source`` rows (matching ``where``) into every kind of rollup row."""
    return [upsert(dim, source, f"({where}) AND shadow_of IS NULL", dialect) for dim in dims]


def rebuild(dialect: Dialect) -> list[str]:
    """Migration 4's rebuild: the rollup of every record already in the ledger (version 4's kinds)."""
    return [f"DELETE FROM {TABLE}", *maintain(dialect, "requests", "1 = 1", V4_DIMS)]


def version_6(dialect: Dialect) -> list[str]:
    """Migration 6: the new columns, then the ``key`` and ``use`` rows of the records already there."""
    return [*add_columns(dialect), *maintain(dialect, "requests", "1 = 1", ("key", "use"))]


def ensure_log2(conn: sqlite3.Connection) -> None:
    """SQLite built without its math functions lacks ``log2``: supply Python's to this connection."""
    try:
        conn.execute("SELECT log2(2.0)").fetchone()
    except sqlite3.OperationalError:
        conn.create_function("log2", 1, _log2, deterministic=True)


def _log2(value: float | None) -> float | None:
    if value is None or value <= 0:
        return None
    return math.log2(value)


def percentile(counts: list[int], q: float) -> float | None:
    """The ``q``-th percentile (0-100) read from a histogram (geometric interpolation within a bucket)."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q / 100.0 * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            share = (rank - seen) / n
            if i == 0:
                return share  # [0, 1) ms
            lo = float(2.0 ** ((i - 1) / PER_OCTAVE))
            if i == BUCKETS - 1:
                return lo
            return lo * float(2.0 ** (share / PER_OCTAVE))
        seen += n
    return None
