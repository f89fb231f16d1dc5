"""The ledger store contract, for SQLite and PostgreSQL (a real server on loopback)."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.support.postgres import PostgresServer

from tokenomy.ledger.record import COLUMNS, LedgerRecord, as_row
from tokenomy.ledger.schema import SCHEMA_VERSION, VERSION_TABLE, migrations
from tokenomy.ledger.stores.base import LedgerStore, StoreUnavailable
from tokenomy.ledger.stores.postgres import PostgresStore
from tokenomy.ledger.stores.sqlite import SqliteStore

StoreFactory = Callable[[], LedgerStore]


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes stores on one fresh database (call it again to "reopen"); closes them all after."""
    made: list[LedgerStore] = []
    server: PostgresServer | None = None
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        dsn = server.create_database()

    def make() -> LedgerStore:
        store: LedgerStore = PostgresStore(dsn) if server else SqliteStore(tmp_path / "ledger.db")
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    if server is not None:
        server.drop_database(dsn)


def opened(new_store: StoreFactory) -> LedgerStore:
    store = new_store()
    store.open()
    return store


def query(store: LedgerStore, sql: str) -> list[tuple[Any, ...]]:
    conn = store.connect()
    try:
        return [tuple(row) for row in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def read_back(store: LedgerStore) -> dict[str, tuple[Any, ...]]:
    rows = query(store, f"SELECT {', '.join(COLUMNS)} FROM requests")
    return {row[0]: row for row in rows}


def rec(i: int, **fields: Any) -> LedgerRecord:
    return LedgerRecord(request_id=f"req_{i:08d}", ts=1_700_000_000.0 + i, **fields)


FULL = LedgerRecord(
    request_id="req_full",
    ts=1_700_000_123.456789,
    api_key="team-\u03b1",
    tenant="acme",
    end_user="ユーザー 1",
    task="summarise 📝",
    endpoint="chat",
    wire="anthropic",
    requested_model="claude",
    served_model="gpt-4o-mini",
    deployment="openai/gpt-4o-mini",
    provider="openai",
    stream=True,
    status=200,
    error_type=None,
    prompt_tokens=2**40,
    completion_tokens=17,
    cached_tokens=3,
    reasoning_tokens=0,
    token_source="provider",
    language="fr",
    latency_ms=123.456,
    ttft_ms=0.1 + 0.2,
    cache="hit-exact",
    route="round-robin:openai/gpt-4o-mini",
    price_source="genai-prices",
    cost_usd=1.5e-07,
    baseline_cost_usd=0.000123456789,
    saved_cache_usd=1e-300,
    saved_routing_usd=0.25,
    saved_compression_usd=0.0,
    saved_batching_usd=-0.0,
    prompt_hash="ab" * 32,
    prompt="héllo \"quoted\" 'single' \\ back\tslash\nnew line, comma; 中文 🙂",
    client_request_id="client-chosen-1",
    response='the answer, "quoted"\n🙂',
    finish_reason="length",
)
SPARSE = LedgerRecord(request_id="req_sparse", ts=0.0, status=502, error_type="upstream_error")


def test_open_migrates_to_the_current_version(new_store: StoreFactory) -> None:
    store = opened(new_store)
    assert query(store, "SELECT version FROM schema_version") == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    assert query(store, "SELECT count(*) FROM requests") == [(0,)]


def test_a_version_1_ledger_gains_the_correlation_column_and_keeps_its_rows(new_store: StoreFactory) -> None:
    """Ledgers written before gateway-generated ids: migrated in place, old rows kept."""
    store = new_store()
    conn = _raw_connection(store)
    v1 = migrations(store.dialect)[0]
    for statement in [VERSION_TABLE, *v1, "INSERT INTO schema_version (version) VALUES (1)"]:
        conn.execute(statement)
    old = ("client-id-1", 1.0, "default", "untagged", "chat", "openai", "m", False, 200, 0, 0, 0, 0, "none", 1.0)
    cols = "request_id, ts, tenant, task, endpoint, wire, requested_model, stream, status, prompt_tokens, "
    cols += "completion_tokens, cached_tokens, reasoning_tokens, token_source, latency_ms"
    fill = ", 'none', 'unknown', 0, 0, 0, 0, 0, 0"
    marks = ", ".join(["?" if store.dialect == "sqlite" else "%s"] * len(old))
    conn.execute(
        f"INSERT INTO requests ({cols}, cache, price_source, cost_usd, baseline_cost_usd, saved_cache_usd, "
        f"saved_routing_usd, saved_compression_usd, saved_batching_usd) VALUES ({marks}{fill})",
        old,
    )
    conn.commit()
    conn.close()
    store.open()
    store.write([rec(2, client_request_id="client-id-1")])
    rows = query(store, "SELECT request_id, client_request_id FROM requests ORDER BY ts")
    assert rows == [("client-id-1", None), ("req_00000002", "client-id-1")]
    assert query(store, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]


def test_a_version_3_ledger_gains_the_finish_reason_column_and_keeps_its_rows(new_store: StoreFactory) -> None:
    """Rows written before finish reasons were recorded keep ``NULL`` (unknown); new rows carry theirs."""
    store = new_store()
    conn = _raw_connection(store)
    conn.execute(VERSION_TABLE)
    for version, steps in enumerate(migrations(store.dialect)[:3], start=1):
        for statement in steps:
            conn.execute(statement)
        conn.execute(f"INSERT INTO schema_version (version) VALUES ({version})")
    old = as_row(rec(1))[: COLUMNS.index("finish_reason")]  # a row an older gateway wrote
    marks = ", ".join(["?" if store.dialect == "sqlite" else "%s"] * len(old))
    conn.execute(f"INSERT INTO requests ({', '.join(COLUMNS[: len(old)])}) VALUES ({marks})", old)
    conn.close()
    store.open()
    store.write([rec(2, finish_reason="length")])
    assert query(store, "SELECT request_id, finish_reason FROM requests ORDER BY ts") == [
        ("req_00000001", None),
        ("req_00000002", "length"),
    ]
    assert query(store, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION >= 5


def _raw_connection(store: LedgerStore) -> Any:
    if isinstance(store, SqliteStore):
        return sqlite3.connect(store.path, isolation_level=None)
    assert isinstance(store, PostgresStore)
    return psycopg.connect(**store._params, autocommit=True)


def test_reopening_does_not_migrate_again_or_lose_rows(new_store: StoreFactory) -> None:
    first = opened(new_store)
    first.write([rec(1)])
    first.close()
    again = opened(new_store)
    opened(new_store)  # a second gateway on the same database
    assert query(again, "SELECT count(*) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert list(read_back(again)) == ["req_00000001"]


def test_every_column_reads_back_exactly(new_store: StoreFactory) -> None:
    store = opened(new_store)
    store.write([FULL, SPARSE])
    rows = read_back(store)
    for record in (FULL, SPARSE):
        got, want = rows[record.request_id], as_row(record)
        if store.dialect == "sqlite":  # SQLite has no boolean type
            got = tuple(bool(v) if name == "stream" else v for name, v in zip(COLUMNS, got, strict=True))
        assert got == want
        assert [type(v) for v in got] == [type(v) for v in want]
    assert rows["req_sparse"][COLUMNS.index("served_model")] is None


def test_rewriting_the_same_request_ids_adds_nothing(new_store: StoreFactory) -> None:
    store = opened(new_store)
    batch = [rec(i, cost_usd=1.0) for i in range(10)]
    store.write(batch)
    store.write(batch)  # a spool replay of a batch that was in fact committed
    store.write([rec(5, cost_usd=9.0), rec(10), rec(10), rec(11)])  # old, new, duplicate in one batch
    assert query(store, "SELECT count(*), count(DISTINCT request_id), sum(cost_usd) FROM requests") == [(12, 12, 10.0)]


def test_a_large_batch(new_store: StoreFactory) -> None:
    store = opened(new_store)
    n = 20_000
    store.write([rec(i, prompt_tokens=i, cost_usd=i / 1e6) for i in range(n)])
    assert query(store, "SELECT count(*), sum(prompt_tokens) FROM requests") == [(n, n * (n - 1) // 2)]


def test_write_opens_the_store_itself(new_store: StoreFactory) -> None:
    store = new_store()
    store.write([rec(1)])
    assert list(read_back(store)) == ["req_00000001"]


def test_empty_batch_is_a_no_op(new_store: StoreFactory) -> None:
    store = opened(new_store)
    store.write([])
    assert query(store, "SELECT count(*) FROM requests") == [(0,)]


# -- PostgreSQL only -------------------------------------------------------------------------


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.database() as dsn:
        yield dsn


def test_postgres_text_that_postgres_cannot_hold_is_cleaned_not_refused(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    store.write([rec(1, prompt="a\x00b"), rec(2, end_user="\ud800"), rec(3, prompt_tokens=7.0)])
    rows = query(store, "SELECT prompt, end_user, prompt_tokens FROM requests ORDER BY request_id")
    assert rows == [("a\ufffdb", None, 0), (None, "?", 0), (None, None, 7)]
    store.close()


def test_postgres_outage_raises_then_the_next_write_reconnects(postgres_server: PostgresServer, pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    store.write([rec(1)])
    postgres_server.stop()
    try:
        with pytest.raises(StoreUnavailable):
            store.write([rec(2)])
        with pytest.raises(StoreUnavailable):
            store.open()
    finally:
        postgres_server.start()
    store.write([rec(2), rec(3)])
    assert sorted(read_back(store)) == ["req_00000001", "req_00000002", "req_00000003"]
    store.close()


def test_postgres_restart_between_batches_is_invisible(postgres_server: PostgresServer, pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    store.write([rec(1)])
    postgres_server.stop()
    postgres_server.start()
    store.write([rec(2)])  # the stale connection is replaced without an error
    assert sorted(read_back(store)) == ["req_00000001", "req_00000002"]
    store.close()


def test_postgres_killed_connection_mid_use(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    store.write([rec(1)])
    admin = store.connect()
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tokenomy-ledger'"
        " AND pid <> pg_backend_pid()"
    )
    admin.close()
    store.write([rec(2)])
    assert sorted(read_back(store)) == ["req_00000001", "req_00000002"]
    store.close()


def test_postgres_unreachable_fails_fast_without_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed: connection refused
    store = PostgresStore(f"postgresql://ledger:s3cret-pw@127.0.0.1:{port}/ledger")
    assert "s3cret-pw" not in store.description and str(port) in store.description
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as refused:
        store.write([rec(1)])
    assert time.monotonic() - started < 2
    with pytest.raises(StoreUnavailable) as again:
        store.connect()
    for exc in (refused.value, again.value):
        assert "s3cret-pw" not in str(exc) and store.description in str(exc)


def test_postgres_silent_server_times_out_in_seconds() -> None:
    with socket.socket() as silent:  # accepts TCP connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        dsn = f"host=127.0.0.1 port={silent.getsockname()[1]} dbname=ledger user=u password=pw-xyz connect_timeout=2"
        store = PostgresStore(dsn)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            store.open()
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 6
    assert "pw-xyz" not in str(info.value)


def test_postgres_invalid_dsn_is_reported_without_echoing_it() -> None:
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore("host=x password=s3cret-pw bogus")
    assert "s3cret-pw" not in str(info.value)


def test_postgres_default_connect_timeout_is_short(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    conn = store.connect()
    try:
        assert int(conn.info.get_parameters()["connect_timeout"]) <= 3
        assert conn.info.password and conn.info.password not in store.description
    finally:
        conn.close()


def test_a_version_1_sqlite_ledger_gains_the_response_column(tmp_path: Path) -> None:
    import sqlite3

    from tokenomy.ledger.schema import VERSION_TABLE, migrations
    from tokenomy.ledger.stores.sqlite import SqliteStore

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.execute(VERSION_TABLE)
    for statement in migrations("sqlite")[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    store.open()
    store.write([FULL])
    assert query(store, "SELECT response FROM requests") == [(FULL.response,)]
    store.close()
