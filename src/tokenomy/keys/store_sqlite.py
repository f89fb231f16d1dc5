"""Keys in a SQLite file (the default): one process, or several on one machine.

Lookups read an in-memory snapshot (a dict by hash: no I/O on the request path). Keys created or
revoked through this process apply at once; changes made by another process sharing the file
apply within ``refresh_s`` (the snapshot reloads when SQLite's ``data_version`` moves). The
workers of ``serve --workers N`` apply each other's changes before their next lookup: a change
bumps a counter in the memory they share, and a lookup that sees it moved reloads first.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from tokenomy.keys.record import KeyRecord
from tokenomy.keys.store import KeyStoreUnavailable
from tokenomy.state.shared_memory import KEYS_GENERATION, SharedState

log = logging.getLogger("tokenomy.keys")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    " record TEXT NOT NULL, created REAL NOT NULL, revoked REAL)"
)


class SqliteKeyStore:
    """Keys in one SQLite table; an in-memory snapshot answers lookups."""

    def __init__(self, path: Path, refresh_s: float = 2.0, shared: SharedState | None = None) -> None:
        self.path = path
        self.description = f"sqlite:{path}"
        self._refresh_s = refresh_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._by_hash: dict[str, KeyRecord] = {}
        self._version = -1
        self._changes = 0  # local writes: a snapshot read before one of them is stale
        self._task: asyncio.Task[None] | None = None
        self._shared = shared  # serve --workers: changes other workers made
        self._seen = 0
        self._catching_up: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the file, load the snapshot and start refreshing it."""
        await asyncio.to_thread(self._open)
        if self._shared is not None:
            self._seen = self._shared.generation(KEYS_GENERATION)
        await self._refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name="tokenomy-keys-refresh")

    async def close(self) -> None:
        """Stop refreshing and close the file."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def lookup(self, digest: str) -> KeyRecord | None:
        """The active key with this hash (from the snapshot, reloaded first if another worker changed keys)."""
        if self._shared is not None and self._shared.generation(KEYS_GENERATION) != self._seen:
            if self._catching_up is None:  # one reload for every lookup waiting on it
                self._catching_up = asyncio.ensure_future(self._catch_up())
            await asyncio.shield(self._catching_up)
        return self._by_hash.get(digest)

    def cached(self, digest: str) -> KeyRecord | None:
        """:meth:`lookup` without awaiting (the snapshot is in memory)."""
        return self._by_hash.get(digest)

    async def add(self, record: KeyRecord, digest: str) -> None:
        """Insert a key and add it to the snapshot."""
        row = (record.id, digest, record.name, orjson.dumps(record.to_row()).decode(), record.created)
        await asyncio.to_thread(self._exec, "INSERT INTO keys VALUES (?, ?, ?, ?, ?, NULL)", row)
        self._changes += 1
        self._by_hash[digest] = record
        self._announce()

    async def list(self, include_revoked: bool = False) -> list[KeyRecord]:
        """Every key, oldest first."""
        rows = await asyncio.to_thread(self._rows, include_revoked)
        return [_record(row) for _digest, row in rows]

    async def revoke(self, key_id: str, when: float) -> KeyRecord | None:
        """Mark the key revoked and drop it from the snapshot at once."""
        found = await asyncio.to_thread(self._revoke, key_id, when)
        if found is None:
            return None
        digest, record = found
        self._changes += 1
        self._by_hash.pop(digest, None)
        self._announce()
        return record

    def _announce(self) -> None:
        """Tell the other workers that the keys changed (this one reloads too, which is harmless)."""
        if self._shared is not None:
            self._shared.bump(KEYS_GENERATION)

    async def _catch_up(self) -> None:
        """Reload the snapshot until it includes every change announced so far."""
        assert self._shared is not None
        try:
            for _ in range(3):  # a local write racing the read makes _refresh give up once
                generation = self._shared.generation(KEYS_GENERATION)
                self._version = -1  # reload even if this connection's data_version has not moved yet
                await self._refresh()
                if self._version != -1:
                    self._seen = generation
                    return
        except Exception:  # keep serving the last snapshot; the next lookup tries again
            log.exception("reloading the key store %s failed", self.path)
        finally:
            self._catching_up = None

    # -- on a worker thread ---------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise KeyStoreUnavailable(f"cannot open the key store {self.path}: {exc}") from exc
        self._conn = conn

    def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            assert self._conn is not None, "the key store is not open"
            try:
                return self._conn.execute(sql, args).rowcount
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"the key store refused the key: {exc}") from exc
            except sqlite3.Error as exc:
                raise KeyStoreUnavailable(f"writing the key store failed: {exc}") from exc

    def _rows(self, include_revoked: bool) -> builtins.list[tuple[str, dict[str, Any]]]:
        where = "" if include_revoked else " WHERE revoked IS NULL"
        with self._lock:
            assert self._conn is not None, "the key store is not open"
            rows = self._conn.execute(f"SELECT sha256, record, revoked FROM keys{where} ORDER BY created").fetchall()
        return [(digest, {**orjson.loads(record), "revoked": revoked}) for digest, record, revoked in rows]

    def _revoke(self, key_id: str, when: float) -> tuple[str, KeyRecord] | None:
        with self._lock:
            assert self._conn is not None, "the key store is not open"
            self._conn.execute("UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (when, key_id))
            row = self._conn.execute("SELECT sha256, record, revoked FROM keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        return row[0], _record({**orjson.loads(row[1]), "revoked": row[2]})

    def _load(self) -> tuple[int, dict[str, KeyRecord] | None]:
        """The data version and, when it moved, every active key by hash."""
        with self._lock:
            assert self._conn is not None, "the key store is not open"
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return version, None
        return version, {digest: _record(row) for digest, row in self._rows(False)}

    async def _refresh(self) -> None:
        """Reload the snapshot if another process changed the file (swapped on the loop, not the thread)."""
        changes = self._changes
        version, snapshot = await asyncio.to_thread(self._load)
        if snapshot is None:
            return
        if changes != self._changes:  # a local write raced the read: read again next time
            self._version = -1
            return
        self._version, self._by_hash = version, snapshot

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._refresh()
            except Exception:  # keep serving the last snapshot
                log.exception("reloading the key store %s failed", self.path)


def budgeted_key_names(path: Path) -> builtins.list[str]:
    """Names of the active keys in the file at ``path`` that carry a budget (none if there is no file)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        sql = "SELECT name FROM keys WHERE revoked IS NULL AND json_extract(record, '$.budget') IS NOT NULL"
        return [name for (name,) in conn.execute(sql)]
    except sqlite3.OperationalError:  # no keys table yet
        return []
    finally:
        conn.close()


def _record(row: dict[str, Any]) -> KeyRecord:
    return KeyRecord.from_row(row)
