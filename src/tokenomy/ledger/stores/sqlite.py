"""The embedded ledger store: one SQLite file in WAL mode."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import msgspec

from tokenomy.ledger import rollup
from tokenomy.ledger.record import COLUMNS, LedgerRecord
from tokenomy.ledger.schema import VERSION_TABLE, Dialect, migrations
from tokenomy.ledger.stores.base import StoreUnavailable

_INSERT = f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# the batch's new rows are those past the largest rowid before it (a skipped duplicate gets none)
_ROLLUP = rollup.maintain("sqlite", "requests", "rowid > ?")


class SqliteStore:
    """Ledger records in a SQLite file (WAL: readers never block the writer)."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.description = f"sqlite:{self.path}"
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Create the file and its directory if needed, and migrate the schema."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            rollup.ensure_log2(conn)
            migrate(conn)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the ledger {self.description}: {exc}") from exc
        self._conn = conn

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """Insert a batch in one transaction."""
        if self._conn is None:
            self.open()
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN")
            last = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM requests").fetchone()[0]
            conn.executemany(_INSERT, map(msgspec.structs.astuple, records))
            for statement in _ROLLUP:
                conn.execute(statement, (last,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"writing to {self.description} failed: {exc}") from exc

    def connect(self) -> sqlite3.Connection:
        """A new read connection (the file must exist: the gateway creates it)."""
        if not self.path.exists():
            raise StoreUnavailable(f"no ledger at {self.path} (the gateway creates it on its first request)")
        conn = sqlite3.connect(self.path, timeout=30)
        rollup.ensure_log2(conn)
        return conn

    def close(self) -> None:
        """Close the writer connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def migrate(conn: sqlite3.Connection) -> int:
    """Apply missing migrations; returns the schema version now in place."""
    conn.execute(VERSION_TABLE)
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = int(row[0] or 0)
    steps = migrations("sqlite")
    for version in range(current + 1, len(steps) + 1):
        conn.execute("BEGIN")
        for statement in steps[version - 1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    return len(steps)
