"""Stored Responses API responses, per tenant, behind a small port (SQLite, PostgreSQL or Redis).

A stored response keeps the ``response`` object and the input items the model saw (history
included), so ``previous_response_id`` continues a conversation on any deployment and
``GET /v1/responses/{id}/input_items`` can list them. Lookups are by ``(tenant, id)``: another
tenant's id is simply not found. Expired entries answer "expired" for one more retention period,
then are deleted. SQLite reads and writes are primary-key operations run inline (WAL: tens of
microseconds); PostgreSQL or Redis serve several gateways sharing one conversation state.
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


class ResponseStoreUnavailable(Exception):
    """The store cannot be reached or written."""


class ResponseStore(Protocol):
    """Where stored responses live."""

    async def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Keep ``response`` (by its ``id``) with the input ``items``."""

    async def get(self, tenant: str, response_id: str) -> Stored | None:
        """The stored response, ``expired`` when past its retention; ``None`` when unknown to this tenant."""

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Forget a response; False when there was none."""

    async def close(self) -> None:
        """Release the store."""


class NoResponseStore:
    """``responses.store: none``: nothing is kept, every lookup misses."""

    async def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Keep nothing."""

    async def get(self, tenant: str, response_id: str) -> Stored | None:
        """Always unknown."""
        return None

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Nothing to delete."""
        return False

    async def close(self) -> None:
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

    async def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Insert or replace the response's row."""
        now = time.time()
        row = (tenant, response["id"], now, now + self.retention_s, orjson.dumps(response), orjson.dumps(items))
        try:
            db = self._db()
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", row)
            self._writes += 1
            if self._writes % _PURGE_EVERY == 0:
                db.execute("DELETE FROM responses WHERE expires < ?", (now - self.retention_s,))
        except (OSError, sqlite3.Error) as exc:
            raise ResponseStoreUnavailable(str(exc)) from exc

    async def get(self, tenant: str, response_id: str) -> Stored | None:
        """A primary-key read."""
        query = "SELECT expires, response, items FROM responses WHERE tenant = ? AND id = ?"
        try:
            row = self._db().execute(query, (tenant, response_id)).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise ResponseStoreUnavailable(str(exc)) from exc
        if row is None:
            return None
        return Stored(orjson.loads(row[1]), orjson.loads(row[2]), expired=row[0] <= time.time())

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Delete the row."""
        try:
            cursor = self._db().execute("DELETE FROM responses WHERE tenant = ? AND id = ?", (tenant, response_id))
        except (OSError, sqlite3.Error) as exc:
            raise ResponseStoreUnavailable(str(exc)) from exc
        return cursor.rowcount > 0

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class RedisResponseStore:
    """Stored responses in Redis, shared by several gateways: one key per ``(tenant, id)``.

    Each value holds its own expiry (so a lookup can say "expired"); Redis drops it one retention
    period later.
    """

    PREFIX = "tokenomy:responses:"

    def __init__(self, url: str, retention_s: float) -> None:
        from tokenomy.budgets.redis_client import redis_client

        self.retention_s = retention_s
        self._redis: Any = redis_client(url)

    def _key(self, tenant: str, response_id: str) -> str:
        return f"{self.PREFIX}{len(tenant)}:{tenant}:{response_id}"  # the length keeps tenants apart

    async def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """``SET`` with a TTL of two retention periods."""
        value = orjson.dumps({"expires": time.time() + self.retention_s, "response": response, "items": items})
        await self._call(self._redis.set(self._key(tenant, response["id"]), value, ex=int(2 * self.retention_s) + 1))

    async def get(self, tenant: str, response_id: str) -> Stored | None:
        """One ``GET``."""
        raw = await self._call(self._redis.get(self._key(tenant, response_id)))
        if raw is None:
            return None
        value = orjson.loads(raw)
        return Stored(value["response"], value["items"], expired=value["expires"] <= time.time())

    async def delete(self, tenant: str, response_id: str) -> bool:
        """One ``DEL``."""
        return bool(await self._call(self._redis.delete(self._key(tenant, response_id))))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise ResponseStoreUnavailable(f"redis: {exc}") from exc


class PostgresResponseStore:
    """Stored responses in a PostgreSQL table, shared by several gateways (one async connection)."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS tokenomy_responses (tenant TEXT NOT NULL, id TEXT NOT NULL,"
        " expires DOUBLE PRECISION NOT NULL, response JSONB NOT NULL, items JSONB NOT NULL, PRIMARY KEY (tenant, id))"
    )

    def __init__(self, dsn: str, retention_s: float) -> None:
        self.retention_s = retention_s
        self._dsn = dsn
        self._conn: Any = None
        self._writes = 0

    async def _run(self, query: str, params: tuple[Any, ...]) -> Any:
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
                await self._conn.execute(self._SCHEMA)
            return await self._conn.execute(query, params)
        except (psycopg.Error, OSError) as exc:
            self._conn = None  # reconnect next time
            raise ResponseStoreUnavailable(f"postgres: {exc}") from exc

    async def put(self, tenant: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """An upsert; every 500 writes, rows expired one retention period ago are deleted."""
        now = time.time()
        await self._run(
            "INSERT INTO tokenomy_responses VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant, id) DO UPDATE"
            " SET expires = EXCLUDED.expires, response = EXCLUDED.response, items = EXCLUDED.items",
            (tenant, response["id"], now + self.retention_s, orjson.dumps(response).decode(),
             orjson.dumps(items).decode()),
        )  # fmt: skip
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            await self._run("DELETE FROM tokenomy_responses WHERE expires < %s", (now - self.retention_s,))

    async def get(self, tenant: str, response_id: str) -> Stored | None:
        """A primary-key read."""
        cursor = await self._run(
            "SELECT expires, response, items FROM tokenomy_responses WHERE tenant = %s AND id = %s",
            (tenant, response_id),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return Stored(row[1], row[2], expired=row[0] <= time.time())

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Delete the row."""
        cursor = await self._run("DELETE FROM tokenomy_responses WHERE tenant = %s AND id = %s", (tenant, response_id))
        return bool(cursor.rowcount)

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def response_store_for(config: ResponsesConfig) -> ResponseStore:
    """The configured store (nothing is opened before first use)."""
    if config.store == "none":
        return NoResponseStore()
    if config.store == "postgres":
        assert config.dsn is not None
        return PostgresResponseStore(config.dsn.resolve() or "", config.retention_s)
    if config.store == "redis":
        assert config.redis_url is not None
        return RedisResponseStore(config.redis_url.resolve() or "", config.retention_s)
    return SqliteResponseStore(config.sqlite_path, config.retention_s)
