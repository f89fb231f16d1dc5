"""The ledger store port: what the writer and the reports need from a database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.schema import Dialect


class StoreUnavailable(Exception):
    """The store cannot be reached or written now (the writer spools and retries)."""


class LedgerStore(Protocol):
    """A durable home for ledger records.

    Stores are used from one writer thread (``write``) and by report queries (``connect``);
    ``write`` is idempotent on ``request_id`` so a spool replay never duplicates a record.
    """

    dialect: Dialect
    description: str  # where the records go, for logs and errors (no secrets)

    def open(self) -> None:
        """Connect and apply missing migrations; raises :class:`StoreUnavailable`."""

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """Insert records (existing request ids are skipped); raises :class:`StoreUnavailable`."""

    def connect(self) -> Any:
        """A new DB-API connection for read queries (the caller closes it)."""

    def close(self) -> None:
        """Release connections."""


class NullStore:
    """``ledger.store: none``: records feed the metrics and are not kept."""

    dialect: Dialect = "sqlite"
    description = "nowhere (ledger store: none)"

    def open(self) -> None:
        """Nothing to open."""

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """Drop the records (metrics were already counted)."""

    def connect(self) -> Any:
        """There is nothing to query."""
        raise StoreUnavailable("the ledger is off (ledger.store: none); there are no records to read")

    def close(self) -> None:
        """Nothing to close."""
