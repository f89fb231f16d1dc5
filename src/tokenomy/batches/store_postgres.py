"""Batch state in PostgreSQL, shared by several gateways; the files in a folder they all mount.

The tables are those of the embedded store, in a schema of their own (``tokenomy_batches``),
with a ``seq`` column for insertion order where SQLite has ``rowid``. Leases are timed by the
database's clock, so gateways whose clocks disagree still agree on when a lease has expired.
One connection, used by one thread at a time (the runner and the API call the store from
worker threads); a broken connection is opened again on the next call.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tokenomy.batches.store import _SCHEMA, SqlBatchStore

SCHEMA_NAME = "tokenomy_batches"


def _postgres_schema() -> list[str]:
    """The embedded store's tables in PostgreSQL's dialect, each with an insertion-order ``seq``."""
    statements = [s.strip() for s in _SCHEMA.split(";") if s.strip()]
    out = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME}"]
    for sql in statements:
        sql = re.sub(r"^(CREATE TABLE IF NOT EXISTS \w+ \()", r"\1seq BIGSERIAL, ", sql)
        out.append(sql.replace("INTEGER", "BIGINT").replace(" REAL", " DOUBLE PRECISION"))
    return out


class PostgresBatchStore(SqlBatchStore):
    """Batch state in PostgreSQL (``dsn``), files in ``files_dir``."""

    def __init__(self, dsn: str, files_dir: Path) -> None:
        self.files_dir = files_dir
        files_dir.mkdir(parents=True, exist_ok=True)
        self._dsn = dsn
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            conn = self._connection()
            if conn.execute(f"SELECT to_regclass('{SCHEMA_NAME}.leases')").fetchone() != (None,):
                return  # made already: its DDL would lock the tables other gateways are writing
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('tokenomy_batches_schema'))")
                for sql in _postgres_schema():
                    conn.execute(sql)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=10, options=f"-c search_path={SCHEMA_NAME}"
            )
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                yield cursor

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(self._q(sql), tuple(args)).fetchall()

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s").replace("rowid", "seq")

    def _now(self, db: Any) -> float:
        return float(db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
