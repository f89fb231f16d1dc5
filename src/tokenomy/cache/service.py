"""The cache's tiers behind one interface: level 1 in memory, level 2 in a shared store.

Reads go through level 1, then level 2 (promoting what they find). Writes go to level 1 at
once and to level 2 in the background. A level-2 store that is down is skipped (logged once,
counted) until it answers again; a corrupted entry reads as a miss and is deleted.

Under ``serve --workers N`` every worker has its own level 1: an invalidation received by one
worker bumps a generation counter in the memory the workers share, and each worker compares it
with the value it last saw (an 8-byte read) before it reads its level 1, emptying it when the
counter moved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tokenomy.cache.entry import CacheEntry, CorruptEntry, pack, unpack
from tokenomy.cache.memory import MemoryTier
from tokenomy.cache.stores.base import CacheStore, CacheUnavailable, EntryMeta
from tokenomy.state.shared_memory import CACHE_GENERATION, SharedState
from tokenomy.telemetry import metrics

log = logging.getLogger("tokenomy.cache")
RemotePut = Callable[[str, bytes, str, str, str, float], bool]
"""(key, packed entry, namespace, model, task, expires) -> whether the writer process took it."""
_RETRY_S = 1.0
_INVALIDATE_FLUSH_S = 5.0  # longest an invalidation waits for this process's queued level-2 writes


class CacheService:
    """Level 1 + level 2, with outage handling."""

    def __init__(self, memory_bytes: int, store: CacheStore | None) -> None:
        self.memory = MemoryTier(memory_bytes)
        self.store = store
        self._down_until = 0.0
        self._down_logged = False
        self._tasks: set[asyncio.Task[None]] = set()
        metrics.CACHE_STORE_UP.set(1 if store is not None else 0)
        # a store that queues writes itself (SQLite: batched on its thread) costs no task per put
        self._put_nowait = getattr(store, "put_nowait", None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._remote_put: RemotePut | None = None
        self._remote_flush: Callable[[float], bool] | None = None
        self._shared: SharedState | None = None  # serve --workers: invalidations other workers received
        self._seen = 0
        if self._put_nowait is not None:
            store.on_error = self._queued_write_failed  # type: ignore[union-attr]

    async def get(self, key: str, max_age: float | None = None) -> tuple[CacheEntry | None, str]:
        """The fresh entry for ``key`` and the tier that had it (``memory``, ``store`` or ``miss``)."""
        now = time.time()
        if self._shared is not None:
            self._catch_up()
        seen = self._seen
        entry = self.memory.get(key, now, max_age)
        if entry is not None:
            metrics.child(metrics.CACHE_LOOKUPS, "memory", "hit").inc()
            return entry, "memory"
        if self.store is None or now < self._down_until:
            return None, "miss"
        try:
            data = await self.store.get(key)
        except CacheUnavailable as exc:
            self._down("get", exc)
            return None, "miss"
        self._up()
        if data is None:
            metrics.child(metrics.CACHE_LOOKUPS, "store", "miss").inc()
            return None, "miss"
        try:
            entry = unpack(data)
        except CorruptEntry as exc:
            log.warning("cache entry %s is corrupt (%s); deleted", key, exc)
            metrics.child(metrics.CACHE_LOOKUPS, "store", "corrupt").inc()
            self.background(self.store.delete(key))
            return None, "miss"
        if not entry.fresh(now, max_age):
            metrics.child(metrics.CACHE_LOOKUPS, "store", "miss").inc()
            return None, "miss"
        if self._shared is not None:
            self._catch_up()
        if seen == self._seen:  # not read from before an invalidation that came during the read
            self.memory.put(key, entry)
        metrics.child(metrics.CACHE_LOOKUPS, "store", "hit").inc()
        return entry, "store"

    def put(self, key: str, entry: CacheEntry) -> None:
        """Keep an entry: level 1 now, level 2 in the background."""
        self.memory.put(key, entry)
        metrics.CACHE_MEMORY_BYTES.set(self.memory.bytes_used)
        if self.store is not None and time.time() >= self._down_until:
            packed = pack(entry)
            remote = self._remote_put
            if remote is not None and remote(key, packed, entry.namespace, entry.model, entry.task, entry.expires):
                return  # the writer process stores it
            meta = EntryMeta(entry.namespace, entry.model, entry.task, entry.expires)
            if self._put_nowait is not None:
                if self._loop is None:
                    self._loop = asyncio.get_running_loop()
                self._put_nowait(key, packed, meta)
            else:
                self.background(self._store_set(key, packed, meta))

    def send_writes_to(self, put: RemotePut, flush: Callable[[float], bool]) -> None:
        """Hand level-2 writes to the writer process (``put`` returns False when it cannot take one;
        ``flush(timeout)`` blocks until it has stored what it took, False on timeout)."""
        self._remote_put = put
        self._remote_flush = flush

    def share_invalidations(self, state: SharedState) -> None:
        """Follow (and announce) invalidations through the memory the workers of ``serve --workers`` share."""
        self._shared = state
        self._seen = state.generation(CACHE_GENERATION)

    def _catch_up(self) -> None:
        """Empty level 1 if another worker invalidated since this one last looked."""
        assert self._shared is not None
        generation = self._shared.generation(CACHE_GENERATION)
        if generation != self._seen:
            self.memory.clear()
            metrics.CACHE_MEMORY_BYTES.set(0)
            self._seen = generation

    async def invalidate(self, *, namespace: str | None, model: str | None, task: str | None) -> int:
        """Remove matching entries from level 2 and clear level 1 (every worker's); returns level 2's count.

        This process's queued level-2 writes are stored first, so an answer cached before the
        invalidation cannot reach level 2 after it."""
        self.memory.clear()
        try:
            if self.store is None:
                return 0
            await self._flush_writes()
            try:
                return await self.store.invalidate(namespace=namespace, model=model, task=task)
            except CacheUnavailable as exc:
                self._down("invalidate", exc)
                raise
        finally:
            self.memory.clear()  # again: a level-2 read during the deletion may have promoted an entry
            if self._shared is not None:
                self._seen = self._shared.bump(CACHE_GENERATION)  # the other workers empty their level 1
            else:
                self._seen += 1  # a read in progress here does not promote what it found

    async def _flush_writes(self) -> None:
        if self._tasks:  # writes sent as tasks (Redis)
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        flush = getattr(self.store, "flush", None)
        if flush is not None:
            await flush()
        if self._remote_flush is not None:
            await asyncio.to_thread(self._remote_flush, _INVALIDATE_FLUSH_S)

    async def drain(self) -> None:
        """Wait for background writes (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        flush = getattr(self.store, "flush", None)
        if flush is not None:
            await flush()
        if self._remote_flush is not None:
            await asyncio.to_thread(self._remote_flush, 30.0)

    def _queued_write_failed(self, exc: CacheUnavailable) -> None:
        """From the store's writer thread: mark the store down on the event loop's thread."""
        try:
            assert self._loop is not None  # set by the first put
            self._loop.call_soon_threadsafe(self._down, "set", exc)
        except (RuntimeError, AssertionError):  # the loop is closed (shutdown)
            log.error("cache store write failed during shutdown: %s", exc)

    async def close(self) -> None:
        """Finish background writes and close the store."""
        await self.drain()
        if self.store is not None:
            await self.store.close()

    async def _store_set(self, key: str, value: bytes, meta: EntryMeta) -> None:
        assert self.store is not None
        try:
            await self.store.set(key, value, meta)
            self._up()
        except CacheUnavailable as exc:
            self._down("set", exc)

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run cache work without making the request wait (``drain`` waits for it)."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _down(self, op: str, exc: Exception) -> None:
        assert self.store is not None
        metrics.child(metrics.CACHE_STORE_ERRORS, self.store.name, op).inc()
        metrics.child(metrics.CACHE_LOOKUPS, "store", "error").inc()
        metrics.CACHE_STORE_UP.set(0)
        self._down_until = time.time() + _RETRY_S
        if not self._down_logged:
            log.error("cache store %s unavailable (%s); serving from memory and upstream", self.store.name, exc)
            self._down_logged = True

    def _up(self) -> None:
        if self._down_logged:
            log.info("cache store %s is back", self.store.name if self.store else "?")
            self._down_logged = False
            metrics.CACHE_STORE_UP.set(1)
