"""The ledger's SQL schema and its migrations, for SQLite and PostgreSQL.

Migrations are an ordered list per dialect; ``schema_version`` holds the last one applied.
Each store applies the missing ones in a transaction when it opens. Add a migration by
appending to both lists (never edit an applied one).
"""

from __future__ import annotations

from typing import Literal

from tokenomy.ledger import rollup

Dialect = Literal["sqlite", "postgres"]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"text": "TEXT", "int": "INTEGER", "real": "REAL", "bool": "INTEGER", "big": "INTEGER"},
    "postgres": {"text": "TEXT", "int": "INTEGER", "real": "DOUBLE PRECISION", "bool": "BOOLEAN", "big": "BIGINT"},
}

# (column, type kind, constraint) in LedgerRecord field order
_COLUMNS_V1: tuple[tuple[str, str, str], ...] = (
    ("request_id", "text", "PRIMARY KEY"),
    ("ts", "real", "NOT NULL"),
    ("api_key", "text", ""),
    ("tenant", "text", "NOT NULL"),
    ("end_user", "text", ""),
    ("task", "text", "NOT NULL"),
    ("endpoint", "text", "NOT NULL"),
    ("wire", "text", "NOT NULL"),
    ("requested_model", "text", "NOT NULL"),
    ("served_model", "text", ""),
    ("deployment", "text", ""),
    ("provider", "text", ""),
    ("stream", "bool", "NOT NULL"),
    ("status", "int", "NOT NULL"),
    ("error_type", "text", ""),
    ("prompt_tokens", "big", "NOT NULL"),
    ("completion_tokens", "big", "NOT NULL"),
    ("cached_tokens", "big", "NOT NULL"),
    ("reasoning_tokens", "big", "NOT NULL"),
    ("token_source", "text", "NOT NULL"),
    ("language", "text", ""),
    ("latency_ms", "real", "NOT NULL"),
    ("ttft_ms", "real", ""),
    ("cache", "text", "NOT NULL"),
    ("route", "text", ""),
    ("price_source", "text", "NOT NULL"),
    ("cost_usd", "real", "NOT NULL"),
    ("baseline_cost_usd", "real", "NOT NULL"),
    ("saved_cache_usd", "real", "NOT NULL"),
    ("saved_routing_usd", "real", "NOT NULL"),
    ("saved_compression_usd", "real", "NOT NULL"),
    ("saved_batching_usd", "real", "NOT NULL"),
    ("prompt_hash", "text", ""),
    ("prompt", "text", ""),
)


def _create_requests(dialect: Dialect) -> str:
    types = _TYPES[dialect]
    cols = ",\n  ".join(f"{name} {types[kind]} {extra}".rstrip() for name, kind, extra in _COLUMNS_V1)
    return f"CREATE TABLE IF NOT EXISTS requests (\n  {cols}\n)"


def migrations(dialect: Dialect) -> list[list[str]]:
    """Statements of each migration, in order (migration N is ``migrations(d)[N - 1]``)."""
    v1 = [
        _create_requests(dialect),
        # the report queries filter on time, then group in one pass over that range; more
        # indexes would cost every insert (measured: each one adds ~1-2 µs per record)
        "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts)",
    ]
    v2 = [
        # the gateway generates the primary key; the client's x-request-id is a correlation
        # field, looked up within a tenant (partial index: rows without one cost the insert nothing)
        "ALTER TABLE requests ADD COLUMN client_request_id TEXT",
        "CREATE INDEX IF NOT EXISTS requests_client_id ON requests (tenant, client_request_id)"
        " WHERE client_request_id IS NOT NULL",
    ]
    # 3: the answer's text next to the stored prompt (``store_prompts``), for replaying logged traffic;
    # shadow copies point at the production request they copy
    add = f"ALTER TABLE requests ADD COLUMN {'IF NOT EXISTS ' if dialect == 'postgres' else ''}"
    v3 = [add + "response TEXT", add + "shadow_of TEXT"]
    # 4: hourly rollups kept in step by the stores, built here from the records already there
    # (the dashboard reads whole hours from them; see tokenomy.ledger.rollup)
    v4 = [*rollup.create_table(dialect), *rollup.rebuild(dialect)]
    return [v1, v2, v3, v4, finish_reason_step(dialect), dashboard_step(dialect)]


def finish_reason_step(dialect: Dialect) -> list[str]:
    """Version 5: why each answer stopped (OpenAI ``finish_reason`` words: ``stop``, ``length``...).

    ``tokenomy report`` shows the share of answers per task cut short at the output limit; rows
    written before this version have none (they count as unknown, not as complete).
    """
    if_new = "IF NOT EXISTS " if dialect == "postgres" else ""
    return [f"ALTER TABLE requests ADD COLUMN {if_new}finish_reason TEXT"]


def dashboard_step(dialect: Dialect) -> list[str]:
    """Version 6: what keeps the dashboard and the advisor off full scans on large ledgers.

    Rollup rows per API key (the explorer's filter menu) and per successful task, model and deployment
    (the advisor's sums and arrival pattern), built here from the records already there; and a partial
    index holding every column the most expensive prompts are summed from, so that ranking them reads the
    index in prompt order instead of every record (about 5x less CPU on SQLite).
    """
    return [
        *rollup.version_6(dialect),
        "CREATE INDEX IF NOT EXISTS requests_prompt ON requests"
        " (prompt_hash, ts, tenant, cost_usd, prompt_tokens, completion_tokens)"
        " WHERE prompt_hash IS NOT NULL AND shadow_of IS NULL",
    ]


SCHEMA_VERSION = len(migrations("sqlite"))
"""The version a freshly migrated ledger has."""

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
