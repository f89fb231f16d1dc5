"""Level-2 cache store in Redis: shared by every gateway process that points at it.

Layout (all keys under ``tokenomy:c:``)::

    tokenomy:c:e:{key}            hash {v: value, ns, m, t}    expires with the entry (PEXPIREAT)
    tokenomy:c:ns:{namespace}     set of keys                  expires with its longest-lived member
    tokenomy:c:model:{model}      set of keys                  same
    tokenomy:c:task:{task}        set of keys                  same

One hash per entry keeps the value and what invalidation filters on together, with one expiry.
The index sets make invalidation by namespace, model or task proportional to the entries that
match (not to the whole cache, as a ``SCAN`` over every key would be). The price: three ``SADD``
per write (one ``MULTI`` round trip) and index members that outlive their entry (expired or
overwritten with other metadata) until the set itself expires or an invalidation walks past them
and drops them. Invalidation walks the smallest matching set with ``SSCAN`` in batches and checks
each entry's own metadata before deleting it, so no single command blocks Redis for long and a
stale index member can never delete the wrong entry. Deletion uses ``UNLINK`` (freed off the main
thread). Invalidation with no filter ``SCAN``\\s the prefix.

Every connection or timeout error (and any other Redis error) becomes :class:`CacheUnavailable`;
timeouts are short, so a dead Redis costs a request well under a second, and the cache service
then skips the store for a while. Single Redis instance (or a Sentinel-managed primary); not
Redis Cluster (the index sets and entries would live on different slots).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tokenomy.cache.stores.base import CacheUnavailable, EntryMeta

T = TypeVar("T")

PREFIX = "tokenomy:c:"
_ENTRY = PREFIX + "e:"
_INDEX = {"namespace": PREFIX + "ns:", "model": PREFIX + "model:", "task": PREFIX + "task:"}
_FIELDS = (b"ns", b"m", b"t")
_BATCH = 500


class RedisCacheStore:
    """Cache entries in Redis hashes, with per-namespace/model/task index sets."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 0.25,
        timeout_s: float = 0.5,
        max_connections: int = 128,
    ) -> None:
        # One retry (no backoff) reconnects a pooled connection that a Redis restart cut; a Redis
        # that is really down fails at once (refused) or after the connect timeout.
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._redis = Redis(connection_pool=self._pool)

    async def get(self, key: str) -> bytes | None:
        """The value (Redis drops expired entries itself)."""
        value = await self._call(lambda: self._redis.hget(_ENTRY + key, "v"))
        return None if value is None else _bytes(value)

    async def set(self, key: str, value: bytes, meta: EntryMeta) -> None:
        """Store the entry and index it, atomically (``MULTI``)."""
        expires_ms = int(meta.expires * 1000)
        if expires_ms <= int(time.time() * 1000):
            await self.delete(key)
            return
        entry = _ENTRY + key

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.unlink(entry)  # an overwrite must not keep fields of the old entry
                pipe.hset(entry, mapping={"v": value, "ns": meta.namespace, "m": meta.model, "t": meta.task})
                pipe.pexpireat(entry, expires_ms)
                for index in _index_keys(meta.namespace, meta.model, meta.task):
                    pipe.sadd(index, key)
                    pipe.pexpireat(index, expires_ms, nx=True)  # a new set gets the entry's expiry
                    pipe.pexpireat(index, expires_ms, gt=True)  # an older one lives as long as its newest
                await pipe.execute()

        await self._call(write)

    async def delete(self, key: str) -> None:
        """Remove the entry (its index memberships are dropped lazily)."""
        await self._call(lambda: self._redis.unlink(_ENTRY + key))

    async def invalidate(self, *, namespace: str | None, model: str | None, task: str | None) -> int:
        """Delete entries matching every given filter, in batches; returns how many."""
        wanted = {"namespace": namespace, "model": model, "task": task}
        filters = {field: value for field, value in wanted.items() if value is not None}
        if not filters:
            return await self._call(self._clear)
        return await self._call(lambda: self._invalidate(filters))

    async def close(self) -> None:
        """Close the pool's connections."""
        await self._redis.aclose()
        await self._pool.aclose()

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def _invalidate(self, filters: dict[str, str]) -> int:
        indexes = {field: _INDEX[field] + value for field, value in filters.items()}
        sizes = {field: await self._redis.scard(index) for field, index in indexes.items()}
        field = min(sizes, key=lambda f: sizes[f])  # walk the smallest set
        deleted = 0
        cursor = 0
        while True:
            cursor, members = await self._redis.sscan(indexes[field], cursor, count=_BATCH)
            if members:
                batch = [_bytes(m).decode() for m in members]
                deleted += await self._delete_matching(field, indexes[field], batch, filters)
            if cursor == 0:
                return deleted

    async def _delete_matching(self, field: str, walked: str, keys: list[str], filters: dict[str, str]) -> int:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(_ENTRY + key, list(_FIELDS))
            metas: list[list[Any]] = await pipe.execute()
        matched: list[tuple[str, list[str]]] = []
        stale: list[str] = []
        for key, raw in zip(keys, metas, strict=True):
            if raw[0] is None:  # expired or deleted: drop the index member
                stale.append(key)
                continue
            ns, model, task = (_bytes(v).decode() for v in raw)
            current = {"namespace": ns, "model": model, "task": task}
            if all(current[f] == v for f, v in filters.items()):
                matched.append((key, _index_keys(ns, model, task)))
            elif current[field] != filters[field]:  # overwritten with other metadata
                stale.append(key)
        async with self._redis.pipeline(transaction=False) as pipe:
            if stale:
                pipe.srem(walked, *stale)
            for key, indexes in matched:
                pipe.unlink(_ENTRY + key)
                for index in indexes:
                    pipe.srem(index, key)
            results = await pipe.execute()
        unlinked = results[1 if stale else 0 :: 4]  # each match: UNLINK then three SREM
        return sum(int(n) for n in unlinked)

    async def _clear(self) -> int:
        deleted = 0
        cursor = 0
        while True:
            cursor, keys = await self._redis.scan(cursor, match=PREFIX + "*", count=_BATCH * 2)
            if keys:
                deleted += len([k for k in keys if _bytes(k).startswith(_ENTRY.encode())])
                await self._redis.unlink(*keys)
            if cursor == 0:
                return deleted


def _index_keys(namespace: str, model: str, task: str) -> list[str]:
    return [_INDEX["namespace"] + namespace, _INDEX["model"] + model, _INDEX["task"] + task]


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
