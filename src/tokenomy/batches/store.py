"""Batch files on disk and batch state in SQL (SQLite here, PostgreSQL beside), looked up by tenant.

Every read takes the tenant: a file or batch of another tenant is simply not found. The item
table is what makes a gateway-run batch resumable: an item is marked ``running`` (committed)
before it is sent and ``done``/``failed`` with its result after, so after a restart only items
that were in flight at the kill run again, and nothing finished is lost.

A lease per batch says which gateway runs it: several gateways sharing one PostgreSQL store run
each batch on one of them at a time; when that gateway dies its lease expires and another takes
the batch over. A cancel is a column of its own, so the gateway running a batch sees a cancel
made through any other gateway, and its progress writes never overwrite it.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, purpose TEXT NOT NULL, filename TEXT NOT NULL,
  bytes INTEGER NOT NULL, created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_tenant ON files (tenant, created_at);
CREATE TABLE IF NOT EXISTS batches (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_name TEXT, created_at INTEGER NOT NULL, state TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 1, cancel_at INTEGER
);
CREATE INDEX IF NOT EXISTS batches_active ON batches (active);
CREATE INDEX IF NOT EXISTS batches_tenant ON batches (tenant, created_at);
CREATE TABLE IF NOT EXISTS items (
  batch_id TEXT NOT NULL, line INTEGER NOT NULL, custom_id TEXT, status TEXT NOT NULL,
  request TEXT, result TEXT, PRIMARY KEY (batch_id, line)
);
CREATE INDEX IF NOT EXISTS items_status ON items (batch_id, status);
CREATE TABLE IF NOT EXISTS remote (batch_id TEXT PRIMARY KEY, model TEXT NOT NULL, remote_id TEXT);
CREATE TABLE IF NOT EXISTS leases (batch_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
"""

#: batch statuses in which the runner still has work to do
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")


def new_id(prefix: str) -> str:
    """An OpenAI-style id such as ``file-3f9a…`` or ``batch_3f9a…``."""
    return prefix + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One stored file."""

    id: str
    tenant: str
    purpose: str
    filename: str
    bytes: int
    created_at: int


@dataclass(slots=True)
class Item:
    """One line of a batch: its request (``None`` when the line was invalid) and its result."""

    line: int
    custom_id: str | None
    status: str  # pending | running | done | failed
    request: dict[str, Any] | None
    result: dict[str, Any] | None


class SqlBatchStore:
    """Files in a folder, state in SQL tables; subclasses give the connection and the dialect.

    The statements are written for SQLite (``?`` parameters, ``rowid`` for insertion order);
    :meth:`_q` rewrites them for another database.
    """

    files_dir: Path

    def close(self) -> None:
        """Release the database."""

    def _tx(self) -> AbstractContextManager[Any]:
        """A transaction; yields an object with ``execute`` and ``executemany``."""
        raise NotImplementedError

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        """``sql`` in this database's dialect."""
        return sql

    def _now(self, db: Any) -> float:
        """The clock leases are measured by (the database's, where several gateways share it)."""
        return time.time()

    # -- files -------------------------------------------------------------------------------------
    def path_of(self, file_id: str) -> Path:
        """Where a file's bytes are (ids are generated here, never taken from a client as a path)."""
        return self.files_dir / file_id

    def scratch(self) -> Path:
        """A new temporary file in the files folder (moved into place by :meth:`add_file`)."""
        return self.files_dir / new_id("tmp-")

    def add_file(self, tenant: str, purpose: str, filename: str, source: Path | bytes) -> FileRecord:
        """Store ``source`` (a finished temporary file, moved in place, or bytes) as a new file."""
        record = FileRecord(new_id("file-"), tenant, purpose, filename, 0, int(time.time()))
        target = self.path_of(record.id)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            source.replace(target)
        record = FileRecord(record.id, tenant, purpose, filename, target.stat().st_size, record.created_at)
        with self._tx() as db:
            db.execute(
                self._q(
                    "INSERT INTO files (id, tenant, purpose, filename, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                _file_row(record),
            )
        return record

    def get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        """The tenant's file, or ``None``."""
        rows = self._read(
            "SELECT id, tenant, purpose, filename, bytes, created_at FROM files WHERE id = ? AND tenant = ?",
            (file_id, tenant),
        )
        return FileRecord(*rows[0]) if rows else None

    def list_files(self, tenant: str, purpose: str | None, limit: int, after: str | None) -> list[FileRecord]:
        """The tenant's files, newest first, after the cursor ``after``."""
        sql = "SELECT id, tenant, purpose, filename, bytes, created_at FROM files WHERE tenant = ?"
        args: list[Any] = [tenant]
        if purpose:
            sql, args = sql + " AND purpose = ?", [*args, purpose]
        if after:
            sql += " AND rowid < (SELECT rowid FROM files WHERE id = ?)"
            args.append(after)
        return [FileRecord(*row) for row in self._read(sql + " ORDER BY rowid DESC LIMIT ?", (*args, limit))]

    def delete_file(self, tenant: str, file_id: str) -> bool:
        """Delete the tenant's file; False when there was none."""
        with self._tx() as db:
            gone = db.execute(self._q("DELETE FROM files WHERE id = ? AND tenant = ?"), (file_id, tenant)).rowcount
        if gone:
            self.path_of(file_id).unlink(missing_ok=True)
        return bool(gone)

    # -- batches -----------------------------------------------------------------------------------
    def add_batch(self, tenant: str, key_name: str | None, state: dict[str, Any], items: Iterable[Item]) -> None:
        """Store a new batch and its items in one transaction."""
        with self._tx() as db:
            db.execute(
                self._q(
                    "INSERT INTO batches (id, tenant, key_name, created_at, state, active) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (state["id"], tenant, key_name, state["created_at"], orjson.dumps(state).decode(), _active(state)),
            )
            db.executemany(
                self._q(
                    "INSERT INTO items (batch_id, line, custom_id, status, request, result) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                [(state["id"], *_item_row(item)) for item in items],
            )

    def get_batch(self, tenant: str, batch_id: str) -> dict[str, Any] | None:
        """The tenant's batch object, or ``None``."""
        rows = self._read("SELECT state, cancel_at FROM batches WHERE id = ? AND tenant = ?", (batch_id, tenant))
        return _with_cancel(*rows[0]) if rows else None

    def list_batches(self, tenant: str, limit: int, after: str | None) -> list[dict[str, Any]]:
        """The tenant's batches, newest first, after the cursor ``after``."""
        sql, args = "SELECT state, cancel_at FROM batches WHERE tenant = ?", [tenant]
        if after:
            sql += " AND rowid < (SELECT rowid FROM batches WHERE id = ?)"
            args.append(after)
        return [_with_cancel(*row) for row in self._read(sql + " ORDER BY rowid DESC LIMIT ?", (*args, limit))]

    def save_batch(self, state: dict[str, Any]) -> None:
        """Write a batch object back (status, timestamps, counts)."""
        with self._tx() as db:
            db.execute(
                self._q("UPDATE batches SET state = ?, active = ? WHERE id = ?"),
                (orjson.dumps(state).decode(), _active(state), state["id"]),
            )

    def active_batches(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        """``(tenant, key name, batch)`` of every batch with work left, oldest first."""
        rows = self._read("SELECT tenant, key_name, state, cancel_at FROM batches WHERE active = 1 ORDER BY rowid")
        out = [(tenant, key, _with_cancel(state, cancel_at)) for tenant, key, state, cancel_at in rows]
        return [row for row in out if row[2]["status"] in ACTIVE]

    def request_cancel(self, batch_id: str, at: int) -> None:
        """Record a cancel (the gateway running the batch finishes it as ``cancelled``)."""
        with self._tx() as db:
            db.execute(self._q("UPDATE batches SET cancel_at = ? WHERE id = ? AND cancel_at IS NULL"), (at, batch_id))

    def cancel_requested(self, batch_id: str) -> int | None:
        """When a cancel of the batch was asked for, or ``None``."""
        rows = self._read("SELECT cancel_at FROM batches WHERE id = ?", (batch_id,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- leases ------------------------------------------------------------------------------------
    def take_lease(self, batch_id: str, owner: str, ttl_s: float) -> bool:
        """Hold (or keep holding) the right to run a batch for ``ttl_s``; False while another holds it."""
        with self._tx() as db:
            db.execute(
                self._q("INSERT INTO leases (batch_id, owner, expires_at) VALUES (?, '', 0) ON CONFLICT DO NOTHING"),
                (batch_id,),
            )
            holder, expires = db.execute(
                self._q("SELECT owner, expires_at FROM leases WHERE batch_id = ? FOR UPDATE"), (batch_id,)
            ).fetchone()
            now = self._now(db)
            if holder != owner and expires > now:
                return False
            db.execute(
                self._q("UPDATE leases SET owner = ?, expires_at = ? WHERE batch_id = ?"),
                (owner, now + ttl_s, batch_id),
            )
            return True

    def release_lease(self, batch_id: str, owner: str) -> None:
        """Give a batch up (another gateway may take it at once)."""
        with self._tx() as db:
            db.execute(self._q("DELETE FROM leases WHERE batch_id = ? AND owner = ?"), (batch_id, owner))

    # -- items -------------------------------------------------------------------------------------
    def items(self, batch_id: str, status: str | None = None, limit: int = -1, after: int = 0) -> list[Item]:
        """The batch's items in line order after line ``after``, optionally only those with ``status``."""
        sql = "SELECT line, custom_id, status, request, result FROM items WHERE batch_id = ? AND line > ?"
        args: list[Any] = [batch_id, after]
        if status:
            sql, args = sql + " AND status = ?", [*args, status]
        sql += " ORDER BY line"
        if limit >= 0:
            sql, args = sql + " LIMIT ?", [*args, limit]
        return [
            Item(line, cid, st, orjson.loads(req) if req else None, orjson.loads(res) if res else None)
            for line, cid, st, req, res in self._read(sql, args)
        ]

    def mark_running(self, batch_id: str, lines: list[int]) -> None:
        """Record that these items are about to be sent (committed before any is)."""
        with self._tx() as db:
            db.executemany(
                self._q("UPDATE items SET status = 'running' WHERE batch_id = ? AND line = ?"),
                [(batch_id, n) for n in lines],
            )

    def finish_item(self, batch_id: str, line: int, ok: bool, result: dict[str, Any], state: dict[str, Any]) -> None:
        """Store one item's result and the batch's updated counts in one transaction."""
        with self._tx() as db:
            db.execute(
                self._q("UPDATE items SET status = ?, result = ? WHERE batch_id = ? AND line = ?"),
                ("done" if ok else "failed", orjson.dumps(result).decode(), batch_id, line),
            )
            db.execute(
                self._q("UPDATE batches SET state = ?, active = ? WHERE id = ?"),
                (orjson.dumps(state).decode(), _active(state), batch_id),
            )

    def requeue_running(self, batch_id: str) -> int:
        """Items that were in flight (at a restart, or on a gateway that lost the batch) go back to pending."""
        with self._tx() as db:
            return int(
                db.execute(
                    self._q("UPDATE items SET status = 'pending' WHERE batch_id = ? AND status = 'running'"),
                    (batch_id,),
                ).rowcount
            )

    def remote(self, batch_id: str) -> tuple[str, str | None] | None:
        """``(model, provider batch id or None before submission)`` of a provider batch."""
        rows = self._read("SELECT model, remote_id FROM remote WHERE batch_id = ?", (batch_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def set_remote(self, batch_id: str, model: str, remote_id: str | None) -> None:
        """Record that a batch goes to a provider's batch API (and, once sent, its id there)."""
        with self._tx() as db:
            db.execute(
                self._q(
                    "INSERT INTO remote (batch_id, model, remote_id) VALUES (?, ?, ?) ON CONFLICT (batch_id)"
                    " DO UPDATE SET model = excluded.model, remote_id = excluded.remote_id"
                ),
                (batch_id, model, remote_id),
            )

    def counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's items have each status."""
        rows = self._read("SELECT status, count(*) FROM items WHERE batch_id = ? GROUP BY status", (batch_id,))
        return {status: int(n) for status, n in rows}


class BatchStore(SqlBatchStore):
    """The embedded store: ``<dir>/batches.db`` and the files in ``<dir>/files`` (or ``files_dir``)."""

    def __init__(self, directory: Path, files_dir: Path | None = None) -> None:
        self.dir = directory
        self.files_dir = files_dir or directory / "files"
        directory.mkdir(parents=True, exist_ok=True)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / "batches.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(batches)")}
        if "cancel_at" not in columns:  # a store made before cancels had their own column
            self._db.execute("ALTER TABLE batches ADD COLUMN cancel_at INTEGER")
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _q(self, sql: str) -> str:
        return sql.replace(" FOR UPDATE", "")  # BEGIN IMMEDIATE already holds the write lock


def _file_row(record: FileRecord) -> tuple[Any, ...]:
    return (record.id, record.tenant, record.purpose, record.filename, record.bytes, record.created_at)


def _item_row(item: Item) -> tuple[Any, ...]:
    request = orjson.dumps(item.request).decode() if item.request is not None else None
    result = orjson.dumps(item.result).decode() if item.result is not None else None
    return (item.line, item.custom_id, item.status, request, result)


def _active(state: dict[str, Any]) -> int:
    return int(state["status"] in ACTIVE)


def _with_cancel(state: str, cancel_at: int | None) -> dict[str, Any]:
    """The stored batch object, ``cancelling`` once a cancel was asked for and it has not ended."""
    batch: dict[str, Any] = orjson.loads(state)
    if cancel_at is not None and batch["status"] in ("validating", "in_progress"):
        batch.update(status="cancelling", cancelling_at=int(cancel_at))
    return batch
