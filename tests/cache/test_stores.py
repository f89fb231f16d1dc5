"""The level-2 store contract, run against SQLite and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from tests.support.redis import RedisServer

from tokenomy.cache.stores import cache_store_for
from tokenomy.cache.stores.base import CacheStore, CacheUnavailable, EntryMeta
from tokenomy.cache.stores.redis import RedisCacheStore
from tokenomy.cache.stores.sqlite import SqliteCacheStore
from tokenomy.config.cache import ExactCacheConfig


def meta(namespace: str = "t/a/", model: str = "m1", task: str = "chat", ttl: float = 60.0) -> EntryMeta:
    return EntryMeta(namespace, model, task, time.time() + ttl)


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CacheStore]:
    made: CacheStore
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        client = aioredis.Redis.from_url(server.url)
        await client.flushdb()
        await client.aclose()
        made = RedisCacheStore(server.url)
    else:
        made = SqliteCacheStore(tmp_path / "cache.db")
    yield made
    await made.close()


async def test_set_get_delete(store: CacheStore) -> None:
    assert await store.get("k") is None
    await store.set("k", b"v1", meta())
    assert await store.get("k") == b"v1"
    await store.delete("k")
    await store.delete("k")  # absent: no error
    assert await store.get("k") is None


async def test_entries_expire(store: CacheStore) -> None:
    await store.set("short", b"x", meta(ttl=0.3))
    await store.set("gone", b"y", meta(ttl=-1))
    await store.set("long", b"z", meta(ttl=60))
    assert await store.get("short") == b"x" and await store.get("gone") is None
    await asyncio.sleep(0.4)
    assert await store.get("short") is None and await store.get("long") == b"z"


async def test_overwrite_replaces_value_and_metadata(store: CacheStore) -> None:
    await store.set("k", b"old", meta(namespace="ns-old", model="m-old"))
    await store.set("k", b"new", meta(namespace="ns-new", model="m-new"))
    assert await store.get("k") == b"new"
    assert await store.invalidate(namespace="ns-old", model=None, task=None) == 0
    assert await store.invalidate(namespace=None, model="m-old", task=None) == 0
    assert await store.get("k") == b"new"
    assert await store.invalidate(namespace="ns-new", model=None, task=None) == 1
    assert await store.get("k") is None


async def test_invalidate_by_each_filter_and_combinations(store: CacheStore) -> None:
    grid = [(ns, model, task) for ns in ("n1", "n2") for model in ("m1", "m2") for task in ("t1", "t2")]
    for ns, model, task in grid:
        await store.set(f"{ns}-{model}-{task}", b"v", meta(ns, model, task))

    async def alive() -> set[str]:
        return {f"{n}-{m}-{t}" for n, m, t in grid if await store.get(f"{n}-{m}-{t}") is not None}

    assert await store.invalidate(namespace=None, model="m1", task="t1") == 2
    assert await alive() == {f"{n}-{m}-{t}" for n, m, t in grid if (m, t) != ("m1", "t1")}
    assert await store.invalidate(namespace="n1", model=None, task=None) == 3
    assert await store.invalidate(namespace=None, model=None, task="t2") == 2  # n2-m1-t2, n2-m2-t2
    assert await store.invalidate(namespace="n2", model="m2", task="t1") == 1
    assert await alive() == set()
    await store.set("again", b"v", meta())
    assert await store.invalidate(namespace=None, model=None, task=None) == 1  # no filter: everything
    assert await store.get("again") is None


async def test_invalidation_walks_many_entries_in_batches(store: CacheStore) -> None:
    for i in range(1200):
        await store.set(f"k{i}", b"v", meta(namespace="big" if i % 3 else "other"))
    assert await store.invalidate(namespace="big", model=None, task=None) == 800
    assert await store.get("k1") is None and await store.get("k3") == b"v"


async def test_large_and_binary_values(store: CacheStore) -> None:
    binary = bytes(range(256)) * 4
    large = b"\x00\xff" * (3 * 1024 * 1024)
    await store.set("bin", binary, meta())
    await store.set("large", large, meta())
    assert await store.get("bin") == binary
    assert await store.get("large") == large


async def test_redis_index_sets_expire_with_their_longest_entry(redis_server: RedisServer) -> None:
    store = RedisCacheStore(redis_server.url)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await store.set("a", b"v", meta(namespace="idx", ttl=30))
        first = await client.pttl("tokenomy:c:ns:idx")
        await store.set("b", b"v", meta(namespace="idx", ttl=300))
        await store.set("c", b"v", meta(namespace="idx", ttl=10))
        later = await client.pttl("tokenomy:c:ns:idx")
        assert 25_000 < first <= 30_000 and 290_000 < later <= 300_000
        await store.delete("a")
        assert await store.invalidate(namespace="idx", model=None, task=None) == 2
        assert await client.exists("tokenomy:c:ns:idx") == 0  # the deleted member was dropped too
    finally:
        await client.aclose()
        await store.close()


async def test_redis_outage_raises_unavailable_quickly_and_recovers() -> None:
    server = RedisServer()
    server.start()
    store = RedisCacheStore(server.url)
    try:
        await store.set("k", b"v", meta())
        server.stop()
        for op in (
            store.get("k"),
            store.set("k", b"v", meta()),
            store.delete("k"),
            store.invalidate(namespace="t/a/", model=None, task=None),
        ):
            started = time.perf_counter()
            with pytest.raises(CacheUnavailable):
                await op
            assert time.perf_counter() - started < 1.0
        server.start()
        assert await store.get("k") is None  # no persistence: the restart lost it
        await store.set("k", b"back", meta())
        assert await store.get("k") == b"back"
    finally:
        await store.close()
        server.destroy()


async def test_redis_that_never_answers_times_out() -> None:
    with socket_that_accepts_and_stays_silent() as port:
        store = RedisCacheStore(f"redis://127.0.0.1:{port}/0")
        started = time.perf_counter()
        with pytest.raises(CacheUnavailable):
            await store.get("k")
        assert time.perf_counter() - started < 2.0
        await store.close()


@contextlib.contextmanager
def socket_that_accepts_and_stays_silent() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # the kernel completes connections; nobody ever answers
        yield int(sock.getsockname()[1])


def test_cache_store_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_store_for(ExactCacheConfig(store="none")) is None
    assert isinstance(cache_store_for(ExactCacheConfig(path=str(tmp_path / "c.db"))), SqliteCacheStore)
    config = ExactCacheConfig.model_validate({"store": "redis", "redis_url": "${T_REDIS_URL_FOR_TEST}"})
    monkeypatch.delenv("T_REDIS_URL_FOR_TEST", raising=False)
    with pytest.raises(ValueError, match="T_REDIS_URL_FOR_TEST"):
        cache_store_for(config)
    monkeypatch.setenv("T_REDIS_URL_FOR_TEST", "redis://127.0.0.1:1/0")
    assert isinstance(cache_store_for(config), RedisCacheStore)


async def test_sqlite_purges_expired_rows_as_it_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    import tokenomy.cache.stores.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_PURGE_EVERY", 10)
    store = SqliteCacheStore(tmp_path / "c.db")
    gone, live = time.time() - 1, time.time() + 3600
    for i in range(5):
        await store.set(f"old{i}", b"x", EntryMeta("ns", "m", "t", gone))
    for i in range(5):  # the 10th write purges the expired rows
        await store.set(f"new{i}", b"y", EntryMeta("ns", "m", "t", live))
    await store.close()
    conn = sqlite3.connect(tmp_path / "c.db")
    keys = sorted(row[0] for row in conn.execute("SELECT key FROM cache"))
    conn.close()
    assert keys == [f"new{i}" for i in range(5)]
