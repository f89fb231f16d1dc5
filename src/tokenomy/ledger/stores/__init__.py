"""Ledger stores: SQLite (embedded default), PostgreSQL (scale-out), or none."""

from __future__ import annotations

from tokenomy.config.observability import LedgerConfig
from tokenomy.ledger.stores.base import LedgerStore, NullStore, StoreUnavailable

__all__ = ["LedgerStore", "NullStore", "StoreUnavailable", "store_for"]


def store_for(config: LedgerConfig) -> LedgerStore:
    """The store the config names (not yet opened)."""
    if config.store == "none":
        return NullStore()
    if config.store == "postgres":
        from tokenomy.ledger.stores.postgres import PostgresStore

        assert config.dsn is not None  # the config validates this
        dsn = config.dsn.resolve()
        if not dsn:
            raise StoreUnavailable(f"the ledger dsn variable ${{{config.dsn.env}}} is not set")
        return PostgresStore(dsn)
    from tokenomy.ledger.stores.sqlite import SqliteStore

    return SqliteStore(config.sqlite_path)
