"""Level-2 cache store in a SQLite file (survives restarts; one machine).

Reads are point lookups by primary key on the event loop's own connection (WAL, page cache: tens
of microseconds, cheaper than a thread hand-off); writes and invalidations run on one background
thread with its own connection, so the request path never waits for a commit. Answers stored by
the cache stage go through ``put_nowait``: queued in memory and written in batches, one
transaction per batch (a task, a future and a commit per answer cost the request path ~40 µs
of CPU; see docs/benchmarks.md, "Where a request's CPU goes").
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tokenomy.cache.stores.base import CacheUnavailable, EntryMeta

log = logging.getLogger("tokenomy.cache")
T = TypeVar("T")
Pending = tuple[str, bytes, str, str, str, float]
_PURGE_EVERY = 1000  # writes between deletions of expired rows (and checks of the size bound)
_BOUND_CHECK_SHARE = 20  # the size bound is also checked each time 1/20 of it has been written
# Queued writes wait this long for others to join their batch: one thread wake-up and one commit
# per batch instead of per answer. Level 1 serves the answer meanwhile.
_WRITE_DELAY_S = 0.02

_UPSERT = "INSERT OR REPLACE INTO cache (key, value, namespace, model, task, expires) VALUES (?, ?, ?, ?, ?, ?)"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB NOT NULL, namespace TEXT NOT NULL,"
    " model TEXT NOT NULL, task TEXT NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cache_expires ON cache (expires)",
)


class SqliteCacheStore:
    """Cache entries in one SQLite table."""

    name = "sqlite"

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes  # bound on the pages in use; oldest entries are evicted beyond it
        self._unchecked = 0  # value bytes written since the bound was last checked
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tokenomy-cache-sqlite")
        self._writes = 0
        self._pending: deque[Pending] = deque()
        self._drain_queued = False
        self.on_error: Callable[[CacheUnavailable], None] | None = None
        """Called on the writer thread when a queued write fails (the service marks the store down)."""

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(f"cannot open the cache {self.path}: {exc}") from exc
        return conn

    async def get(self, key: str) -> bytes | None:
        """Look the key up (inline: a primary-key read)."""
        if self._reader is None:
            self._reader = await asyncio.get_running_loop().run_in_executor(self._pool, self._open)
        try:
            row = self._reader.execute(
                "SELECT value FROM cache WHERE key = ? AND expires > ?", (key, time.time())
            ).fetchone()
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"reading the cache failed: {exc}") from exc
        return None if row is None else bytes(row[0])

    async def set(self, key: str, value: bytes, meta: EntryMeta) -> None:
        """Store on the writer thread."""
        await self._run(self._set, key, value, meta)

    def put_nowait(self, key: str, value: bytes, meta: EntryMeta) -> None:
        """Queue a write; the writer thread stores queued writes in one transaction per batch."""
        self._pending.append((key, value, meta.namespace, meta.model, meta.task, meta.expires))
        if not self._drain_queued:  # the first write of a batch: the rest join it for _WRITE_DELAY_S
            self._drain_queued = True
            asyncio.get_running_loop().call_later(_WRITE_DELAY_S, self._pool.submit, self._drain)

    async def flush(self) -> None:
        """Wait until every queued write is stored (or has failed)."""
        if self._pending:
            await self._run(self._drain)
        await self._run(_noop)

    def _drain(self) -> None:
        self._drain_queued = False  # before taking the batch: later puts queue another drain
        batch = [self._pending.popleft() for _ in range(len(self._pending))]
        if not batch:
            return
        try:
            self.write_rows(batch)
        except CacheUnavailable as exc:
            if self.on_error is not None:
                self.on_error(exc)
            else:
                log.error("cache: %d queued write(s) lost: %s", len(batch), exc)

    def write_rows(self, rows: list[Pending]) -> None:
        """Store rows ``(key, value, namespace, model, task, expires)`` in one transaction (blocking)."""
        try:
            conn = self._conn()
            conn.execute("BEGIN")
            conn.executemany(_UPSERT, rows)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._writer is not None and self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            raise CacheUnavailable(f"writing the cache failed: {exc}") from exc
        self._housekeep(len(rows), sum(len(row[1]) for row in rows))

    def _housekeep(self, rows: int, size: int) -> None:
        """After writes: every ``_PURGE_EVERY`` writes drop the expired rows, and then, or whenever
        a twentieth of ``max_bytes`` has been written since the last look, enforce the bound (a few
        large answers must not take the file far past it before the thousandth write)."""
        before, self._writes = self._writes, self._writes + rows
        self._unchecked += size
        check = self.max_bytes is not None and self._unchecked >= self.max_bytes // _BOUND_CHECK_SHARE
        if self._writes // _PURGE_EVERY != before // _PURGE_EVERY:
            self.purge_expired()  # expired rows are never read; this keeps the file from growing with them
            check = True
        if check:
            self._unchecked = 0
            self.evict_to_bound()

    async def delete(self, key: str) -> None:
        """Delete on the writer thread."""
        await self._run(self._exec, "DELETE FROM cache WHERE key = ?", (key,))

    async def invalidate(self, *, namespace: str | None, model: str | None, task: str | None) -> int:
        """Delete matching entries; returns how many."""
        where, args = [], []
        for column, value in (("namespace", namespace), ("model", model), ("task", task)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "DELETE FROM cache" + (" WHERE " + " AND ".join(where) if where else "")
        return await self._run(self._exec, sql, tuple(args))

    async def close(self) -> None:
        """Close both connections and the thread."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close_writer)
        self._pool.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    def _set(self, key: str, value: bytes, meta: EntryMeta) -> None:
        try:
            self._conn().execute(_UPSERT, (key, value, meta.namespace, meta.model, meta.task, meta.expires))
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"writing the cache failed: {exc}") from exc
        self._housekeep(1, len(value))

    def _exec(self, sql: str, args: tuple[object, ...]) -> int:
        try:
            return self._conn().execute(sql, args).rowcount
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"cache statement failed: {exc}") from exc

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def bytes_used(self) -> int:
        """Bytes of the file's pages in use (free pages are reused before the file grows)."""
        conn = self._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])

    def evict_to_bound(self) -> int:
        """Over ``max_bytes``: delete the entries that expire first (the oldest, for one TTL) until
        about 90% of the bound is used; returns how many were deleted."""
        if self.max_bytes is None:
            return 0
        try:
            used = self.bytes_used()
            if used <= self.max_bytes:
                return 0
            rows = self._conn().execute("SELECT count(*) FROM cache").fetchone()[0]
            doomed = max(1, int(rows * (used - 0.9 * self.max_bytes) / used))
            return self._exec(
                "DELETE FROM cache WHERE key IN (SELECT key FROM cache ORDER BY expires LIMIT ?)", (doomed,)
            )
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"evicting from the cache failed: {exc}") from exc

    def purge_expired(self) -> int:
        """Delete expired rows (on the writer thread, every ``_PURGE_EVERY`` writes)."""
        return self._exec("DELETE FROM cache WHERE expires <= ?", (time.time(),))


def _noop() -> None:
    return None
