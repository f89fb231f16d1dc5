"""Level 1: an in-process LRU of decoded entries, bounded in bytes (cachetools).

The bound counts what an entry really costs in the process: its body, copied to an exact-size
``bytes`` on the way in (``orjson.dumps`` returns objects whose allocation can be several KB
larger than their length, which made real memory 1.7x and more what was counted), plus a fixed
overhead measured with ``tracemalloc`` for the key, the entry object and the LRU's bookkeeping
(about 420 bytes on CPython 3.11; 448 are counted). ``bench/overload/l1_memory.py`` checks the
count against the process's RSS.
"""

from __future__ import annotations

import msgspec
from cachetools import LRUCache

from tokenomy.cache.entry import CacheEntry

_OVERHEAD = 448  # bytes counted per entry beyond its body (key, entry object, LRU bookkeeping)


def _size(entry: CacheEntry) -> int:
    return len(entry.body) + _OVERHEAD


class MemoryTier:
    """Recently used answers; entries past their expiry are dropped when read."""

    def __init__(self, max_bytes: int) -> None:
        self._lru: LRUCache[str, CacheEntry] | None = (
            LRUCache(maxsize=max_bytes, getsizeof=_size) if max_bytes > 0 else None
        )

    def get(self, key: str, now: float, max_age: float | None) -> CacheEntry | None:
        """A fresh entry, or ``None``."""
        if self._lru is None:
            return None
        entry = self._lru.get(key)
        if entry is None:
            return None
        if now >= entry.expires:
            self._lru.pop(key, None)
            return None
        return entry if entry.fresh(now, max_age) else None

    def put(self, key: str, entry: CacheEntry) -> None:
        """Remember an entry (entries larger than the whole budget are skipped)."""
        if self._lru is not None and _size(entry) <= self._lru.maxsize:
            # an exact-size copy: the body may sit in a much larger allocation (orjson output)
            self._lru[key] = msgspec.structs.replace(entry, body=bytes(memoryview(entry.body)))

    def pop(self, key: str) -> None:
        """Forget one entry."""
        if self._lru is not None:
            self._lru.pop(key, None)

    def clear(self) -> None:
        """Forget everything (after an invalidation)."""
        if self._lru is not None:
            self._lru.clear()

    @property
    def bytes_used(self) -> int:
        """Current size in bytes."""
        return int(self._lru.currsize) if self._lru is not None else 0
