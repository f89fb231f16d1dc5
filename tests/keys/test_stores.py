"""Key stores: SQLite (snapshot refreshed from other processes' writes) and Redis (shared at once)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.support.redis import RedisServer

from tokenomy.config.budgets import KeyBudget
from tokenomy.keys.record import KeyRecord, hash_key, new_id, new_secret
from tokenomy.keys.store import KeyStore
from tokenomy.keys.store_redis import RedisKeyStore
from tokenomy.keys.store_sqlite import SqliteKeyStore


def _record(name: str) -> tuple[KeyRecord, str]:
    secret = new_secret()
    budget = KeyBudget(usd_per_day=2.5, action="soft", downgrade_to="cheap")
    record = KeyRecord(new_id(), name, "team-x", ("fast",), 10, 1000, budget, time.time(), hint=secret[:7])
    return record, hash_key(secret)


async def _two_processes(a: KeyStore, b: KeyStore, settle_s: float) -> None:
    """A key added and revoked through ``a`` is seen by ``b`` (within ``settle_s``)."""
    record, digest = _record(f"k-{time.monotonic_ns()}")
    await a.add(record, digest)
    assert await a.lookup(digest) == record  # at once in the writer
    await asyncio.sleep(settle_s)
    assert await b.lookup(digest) == record
    assert [r.id for r in await b.list()].count(record.id) == 1
    revoked = await a.revoke(record.id, 123.0)
    assert revoked is not None and revoked.revoked == 123.0 and revoked.budget == record.budget
    assert await a.lookup(digest) is None
    await asyncio.sleep(settle_s)
    assert await b.lookup(digest) is None
    assert record.id not in [r.id for r in await b.list()]
    assert record.id in [r.id for r in await b.list(include_revoked=True)]
    assert (await a.revoke(record.id, 456.0)).revoked == 123.0  # type: ignore[union-attr]  # first time kept
    assert await a.revoke("key_nope", 1.0) is None


async def test_sqlite_two_processes_share_the_file(tmp_path: Path) -> None:
    a, b = SqliteKeyStore(tmp_path / "keys.db", 0.05), SqliteKeyStore(tmp_path / "keys.db", 0.05)
    await a.open()
    await b.open()
    try:
        await _two_processes(a, b, 0.2)
    finally:
        await a.close()
        await b.close()


async def test_sqlite_snapshot_survives_a_restart(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    await store.open()
    record, digest = _record("persisted")
    await store.add(record, digest)
    await store.close()
    again = SqliteKeyStore(tmp_path / "keys.db")
    await again.open()
    try:
        assert await again.lookup(digest) == record
    finally:
        await again.close()


async def test_redis_revocation_applies_everywhere_at_once(redis_server: RedisServer) -> None:
    a, b = RedisKeyStore(redis_server.url), RedisKeyStore(redis_server.url)
    await a.open()
    try:
        await _two_processes(a, b, 0.0)
    finally:
        await a.close()
        await b.close()
