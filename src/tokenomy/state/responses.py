"""Stored Responses API responses, per tenant, behind a small port.

A stored response keeps the ``response`` object and the input items the model saw (history
included), so ``previous_response_id`` continues a conversation on any deployment and
``GET /v1/responses/{id}/input_items`` can list them. Lookups are by ``(tenant, id)``: another
tenant's id is simply not found. Expired rows answer "expired" for one more retention period,
then are deleted.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from tokenomy.config.responses import ResponsesConfig

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses (tenant TEXT NOT NULL, id TEXT NOT NULL, created REAL NOT NULL,"
    " expires REAL NOT NULL, response BLOB NOT NULL, items BLOB NOT NULL, PRIMARY KEY (tenant, id))",
    "CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires)",
)
_PURGE_EVERY = 500  # writes between deletions of long-expired rows


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored response: the ``response`` object and the input items it answered."""

    response: dict[str, Any]
    items: list[dict[str, Any]]
    expired: bool = False


class ResponseStore(Protocol):
    """Where stored responses live."""

    def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Keep ``response`` (by its ``id``) with the input ``items``."""

    def get(self, tenant: str, response_id: str) -> Stored | None:
        """The stored response, ``expired`` when past its retention; ``None`` when unknown to this tenant."""

    def delete(self, tenant: str, response_id: str) -> bool:
        """Forget a response; False when there was none."""

    def close(self) -> None:
        """Release the store."""


class NoResponseStore:
    """``responses.store: none``: nothing is kept, every lookup misses."""

    def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Keep nothing."""

    def get(self, tenant: str, response_id: str) -> Stored | None:
        """Always unknown."""
        return None

    def delete(self, tenant: str, response_id: str) -> bool:
        """Nothing to delete."""
        return False

    def close(self) -> None:
        """Nothing to release."""


class SqliteResponseStore:
    """Stored responses in one SQLite table (WAL; primary-key reads and small writes inline)."""

    def __init__(self, path: Path, retention_s: float) -> None:
        self.path = path
        self.retention_s = retention_s
        self._conn: sqlite3.Connection | None = None
        self._writes = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Insert or replace the response's row."""
        now = time.time()
        db = self._db()
        db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (tenant, response["id"], now, now + self.retention_s, orjson.dumps(response), orjson.dumps(items)),
        )
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            db.execute("DELETE FROM responses WHERE expires < ?", (now - self.retention_s,))

    def get(self, tenant: str, response_id: str) -> Stored | None:
        """A primary-key read."""
        row = (
            self._db()
            .execute(
                "SELECT expires, response, items FROM responses WHERE tenant = ? AND id = ?", (tenant, response_id)
            )
            .fetchone()
        )
        if row is None:
            return None
        return Stored(orjson.loads(row[1]), orjson.loads(row[2]), expired=row[0] <= time.time())

    def delete(self, tenant: str, response_id: str) -> bool:
        """Delete the row."""
        cursor = self._db().execute("DELETE FROM responses WHERE tenant = ? AND id = ?", (tenant, response_id))
        return cursor.rowcount > 0

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def response_store_for(config: ResponsesConfig) -> ResponseStore:
    """The configured store (the SQLite file is opened on first use)."""
    if config.store == "none":
        return NoResponseStore()
    return SqliteResponseStore(config.sqlite_path, config.retention_s)
