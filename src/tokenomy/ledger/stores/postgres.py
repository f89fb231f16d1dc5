"""The scale-out ledger store: PostgreSQL through psycopg 3.

Each write COPYs a batch (binary format) into a per-connection temporary staging table and moves
it into ``requests`` with ``INSERT ... ON CONFLICT (request_id) DO NOTHING``: one round trip of
data, one commit, idempotent on ``request_id``. A lost connection raises :class:`StoreUnavailable`; the next
``write`` reconnects by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg
from msgspec.structs import astuple
from psycopg.conninfo import conninfo_to_dict

from tokenomy.ledger import rollup
from tokenomy.ledger.record import COLUMNS, LedgerRecord
from tokenomy.ledger.schema import VERSION_TABLE, Dialect, migrations
from tokenomy.ledger.stores.base import StoreUnavailable

MIGRATION_LOCK = 0x746F6B656E6F6D79  # "tokenomy": serialises migrators across gateways
"""``pg_advisory_xact_lock`` key held while migrating."""

_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 3,  # an unreachable server fails fast; the writer spools meanwhile
    "application_name": "tokenomy-ledger",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # ms: a write to a vanished host fails instead of hanging
}

_COLS = ", ".join(COLUMNS)
_STAGING = "tokenomy_ledger_staging"
_CREATE_STAGING = f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (LIKE requests) ON COMMIT DELETE ROWS"
_COPY = f"COPY {_STAGING} ({_COLS}) FROM STDIN (FORMAT BINARY)"
_INSERTED = (
    f"INSERT INTO requests ({_COLS}) SELECT {_COLS} FROM {_STAGING} ON CONFLICT (request_id) DO NOTHING RETURNING *"
)
# one statement: the rows actually inserted (a replayed request id adds nothing) also go into the rollup
_ROLLUPS = ", ".join(f"r{i} AS ({s})" for i, s in enumerate(rollup.maintain("postgres", "ins", "1 = 1")[1:]))
_MOVE = f"WITH ins AS ({_INSERTED}), {_ROLLUPS} {rollup.maintain('postgres', 'ins', '1 = 1')[0]}"


class PostgresStore:
    """Ledger records in a PostgreSQL database named by a libpq connection string or URL."""

    dialect: Dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            # libpq's message may quote part of the string, password included
            raise StoreUnavailable("the ledger dsn is not a valid PostgreSQL connection string") from None
        self._secret = str(params.get("password") or "")
        self._params = {**_DEFAULTS, **params}
        self.description = _describe(params)
        self._conn: psycopg.Connection[Any] | None = None
        self._types: list[int] = []  # the staging columns' type oids, for binary COPY

    def open(self) -> None:
        """Connect, migrate the schema and prepare the staging table."""
        self._drop()
        conn = self._connect("open the ledger")
        try:
            migrate(conn)
            conn.execute(_CREATE_STAGING)
            cur = conn.execute(f"SELECT {_COLS} FROM {_STAGING} LIMIT 0")
            self._types = [column.type_code for column in cur.description or ()]
            conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise self._unavailable("opening", exc) from None
        self._conn = conn

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """Insert a batch in one transaction.

        A stale connection (the server restarted since the last batch) is replaced and the batch
        retried once; so is a batch PostgreSQL rejects for a value (NUL in text, a float in an
        integer column), with the values cleaned. Anything else raises :class:`StoreUnavailable`.
        """
        if not records:
            return
        rows = [astuple(record) for record in records]
        fresh = self._conn is None
        if fresh:
            self.open()
        try:
            self._write(rows)
            return
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop()
            if fresh:
                raise self._unavailable("writing", exc) from None
            self.open()
        except Exception:
            self._rollback()
            rows = [_cleaned(record) for record in records]
        try:
            self._write(rows)
        except Exception as exc:
            self._rollback()
            raise self._unavailable("writing", exc) from None

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection for read queries (``%s`` parameters; the caller closes it)."""
        conn = self._connect("connect to the ledger")
        conn.autocommit = True
        return conn

    def close(self) -> None:
        """Close the writer connection."""
        self._drop()

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._conn
        assert conn is not None
        with conn.cursor() as cur:
            with cur.copy(_COPY) as copy:
                copy.set_types(self._types)
                for row in rows:
                    copy.write_row(row)
            cur.execute(_MOVE)
        conn.commit()

    def _rollback(self) -> None:
        """End a failed transaction; drop the connection if it is unusable."""
        conn = self._conn
        if conn is None:
            return
        try:
            if conn.broken or conn.closed:
                raise psycopg.InterfaceError("connection lost")
            conn.rollback()
        except psycopg.Error:
            self._drop()

    def _connect(self, doing: str) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(**self._params)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot {doing} {self.description}: {self._scrub(exc)}") from None

    def _unavailable(self, doing: str, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"{doing} {self.description} failed: {self._scrub(exc)}")

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip() or type(exc).__name__
        return text.replace(self._secret, "***") if self._secret else text

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply missing migrations in one transaction; returns the schema version now in place."""
    steps = migrations("postgres")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(VERSION_TABLE)
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = int(row[0] or 0) if row else 0
        for version in range(current + 1, len(steps) + 1):
            for statement in steps[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return len(steps)


def _cleaned(record: LedgerRecord) -> tuple[Any, ...]:
    """The record's row with values coerced to the field types and text storable in PostgreSQL."""
    with contextlib.suppress(msgspec.ValidationError):
        record = msgspec.convert(msgspec.structs.asdict(record), LedgerRecord, strict=False)
    return tuple(_text(value) if isinstance(value, str) else value for value in astuple(record))


def _text(value: str) -> str:
    """No NUL (PostgreSQL text cannot hold it), no lone surrogates (not encodable as UTF-8)."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _describe(params: dict[str, Any]) -> str:
    """``postgresql://user@host:port/dbname`` from the parsed dsn, without the password."""
    user = params.get("user")
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port")
    where = f"{user}@{host}" if user else str(host)
    return f"postgresql://{where}{f':{port}' if port else ''}/{params.get('dbname') or user or ''}"
