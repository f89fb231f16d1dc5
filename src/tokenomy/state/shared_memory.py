"""State the worker processes of ``serve --workers N`` share: one small memory-mapped file.

The supervisor creates the file (:meth:`SharedState.create`) and names it to its workers in
``TOKENOMY_SHARED_STATE``; each worker maps it (:func:`worker_state`). It holds

- **generation counters**: a worker that changes state other workers keep a copy of (a cache
  invalidation, a key created or revoked) bumps a counter; the others compare it with the value
  they last saw, an 8-byte read from memory, on the paths that use the copy, and drop or reload
  it when it moved;
- **token buckets** (:class:`SharedRateLimiter`): deployment RPM/TPM limits checked and taken
  atomically across the workers, with the same arithmetic as the in-process and Redis buckets
  (``tokenomy.keys.limits``).

Writes take an exclusive ``flock`` on the file for a few microseconds. The kernel drops a lock
whose holder dies (even by ``kill -9``), so a crashed worker can never leave the others waiting.
Nothing here is durable: the file lives in the supervisor's temporary folder and goes with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import mmap
import os
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tokenomy.keys.limits import Bucket, Refusal

log = logging.getLogger("tokenomy.workers")

ENV = "TOKENOMY_SHARED_STATE"
CACHE_GENERATION = 0
"""Bumped after every cache invalidation (each worker then empties its level 1)."""
KEYS_GENERATION = 1
"""Bumped after every key created or revoked through the admin API (each worker reloads its keys)."""

_MAGIC = b"TKNSHR01"
_COUNTER = struct.Struct("<Q")
_TABLE = 128  # offset of the bucket table (before it: the magic, then 8-byte counters)
_SLOT = struct.Struct("<Qdd")  # key hash (0: empty), level, last update (CLOCK_MONOTONIC, shared by all processes)
_SLOT_SIZE = 32
SLOTS = 65536  # two buckets per deployment or key with limits; 2 MB, pages touched only as used
_PROBES = 64
_IDLE_S = 120.0  # a bucket untouched this long is full again (debt is at most one minute's allowance)
SIZE = _TABLE + SLOTS * _SLOT_SIZE


class SharedState:
    """One mapping of the shared file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, SIZE)
        if self._map[: len(_MAGIC)] != _MAGIC:
            self.close()
            raise ValueError(f"{path} is not a Tokenomy shared-state file")
        self._full_warned = False

    @classmethod
    def create(cls, path: Path) -> SharedState:
        """A new, zeroed file at ``path`` (the supervisor, before its workers start)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            os.pwrite(fd, _MAGIC, 0)
        finally:
            os.close(fd)
        return cls(path)

    def close(self) -> None:
        """Unmap and close."""
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access across processes (held for microseconds; released if the holder dies)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    # -- generation counters --------------------------------------------------------------------

    def generation(self, counter: int) -> int:
        """The counter's value (a plain read: no lock, no system call)."""
        return int(_COUNTER.unpack_from(self._map, 8 + 8 * counter)[0])

    def bump(self, counter: int) -> int:
        """Add one to the counter; returns the new value."""
        offset = 8 + 8 * counter
        with self.locked():
            value = int(_COUNTER.unpack_from(self._map, offset)[0]) + 1
            _COUNTER.pack_into(self._map, offset, value)
        return value

    # -- token buckets (the arithmetic of tokenomy.keys.limits, in the shared file) -------------

    def take(self, buckets: Sequence[Bucket], now: float | None = None) -> Refusal | None:
        """Take every bucket's cost, all or none; the first bucket short of it refuses."""
        now = time.monotonic() if now is None else now
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # not `locked()`: this runs per request, and a with costs ~1 µs
        try:
            slots = [self._slot(b, now) for b in buckets]
            levels = [self._level(slot, b, now) for slot, b in zip(slots, buckets, strict=True)]
            for i, bucket in enumerate(buckets):
                if levels[i] < bucket.cost:
                    return Refusal(i, (bucket.cost - levels[i]) * 60.0 / bucket.per_minute)
            for bucket, slot, level in zip(buckets, slots, levels, strict=True):
                self._store(slot, bucket, level - bucket.cost, now)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return None

    def charge(self, bucket: Bucket, now: float | None = None) -> None:
        """Take ``bucket.cost`` unconditionally (negative: give back); debt down to minus the limit."""
        now = time.monotonic() if now is None else now
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            slot = self._slot(bucket, now)
            self._store(slot, bucket, self._level(slot, bucket, now) - bucket.cost, now)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _level(self, slot: int | None, bucket: Bucket, now: float) -> float:
        cap = float(bucket.per_minute)
        if slot is None:
            return cap
        _key_hash, stored, last = _SLOT.unpack_from(self._map, slot)
        level: float = min(cap, stored + max(0.0, now - last) * cap / 60.0)
        return level

    def _store(self, slot: int | None, bucket: Bucket, level: float, now: float) -> None:
        if slot is not None:
            cap = float(bucket.per_minute)
            _SLOT.pack_into(self._map, slot, _hash(bucket.key), min(cap, max(-cap, level)), now)

    def _slot(self, bucket: Bucket, now: float) -> int | None:
        """The offset of the bucket's slot (open addressing; a slot idle for ``_IDLE_S`` may be reused).
        A new slot is claimed at once with a full bucket, so two new buckets of one request never
        pick the same slot. ``None`` when the table is full around it: that bucket then never
        refuses (logged once)."""
        key_hash = _hash(bucket.key)
        free = None
        for probe in range(_PROBES):
            offset = _TABLE + ((key_hash + probe) % SLOTS) * _SLOT_SIZE
            found, _level, last = _SLOT.unpack_from(self._map, offset)
            if found == key_hash:
                return offset
            if found == 0:
                free = offset if free is None else free
                break
            if free is None and now - last > _IDLE_S:
                free = offset
        if free is None:
            if not self._full_warned:
                self._full_warned = True
                log.error("the shared rate-limit table is full; bucket %s is not enforced", bucket.key)
            return None
        _SLOT.pack_into(self._map, free, key_hash, float(bucket.per_minute), now)
        return free


class SharedRateLimiter:
    """:class:`tokenomy.keys.limits.RateLimiter` over a :class:`SharedState` (``*_now``: without awaiting)."""

    def __init__(self, state: SharedState) -> None:
        self.take_now = state.take
        self.charge_now = state.charge

    async def take(self, buckets: Sequence[Bucket]) -> Refusal | None:
        """Check and take atomically across the workers."""
        return self.take_now(buckets)

    async def charge(self, bucket: Bucket) -> None:
        """Take (or give back) tokens after the fact."""
        self.charge_now(bucket)


@functools.lru_cache(maxsize=65536)
def _hash(key: str) -> int:
    """A hash every process computes alike (``hash()`` is salted per process); never 0 (empty)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


_worker: list[SharedState | None] = []


def worker_state() -> SharedState | None:
    """This worker's mapping of its supervisor's file (``None`` outside ``serve --workers``)."""
    if not _worker:
        path = os.environ.get(ENV)
        _worker.append(SharedState(Path(path)) if path else None)
    return _worker[0]
