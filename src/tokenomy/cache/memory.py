"""Level 1: an in-process LRU of decoded entries, bounded in bytes (an ``OrderedDict``).

The bound counts what an entry really costs in the process, measured against the process's RSS
(``bench/overload/l1_memory.py``) with the tier full and its entries turning over:

- the body, copied to an exact-size ``bytes`` on the way in (``orjson.dumps`` returns objects
  whose allocation can be several KB larger than their length);
- a fixed overhead for the key, the entry object (with its floats and ints) and the LRU's link;
- the entry's share of the hash table. A dict whose keys keep changing is rebuilt at 3 to 6 slots
  per live entry (CPython sizes it from three times the live entries), against 1.5 to 3 while it
  only grows: at the bound, after the first turnover, the table is about twice what it was when
  the tier was first filled. One ``OrderedDict`` (one table, plus its array of 8-byte node
  pointers) costs 68 to 136 bytes per entry there; the middle is counted.

cachetools' ``LRUCache`` (used here before) keeps three such tables (entries, sizes, order): at
256 MiB they grew by 55 MB at the first turnover, and RSS reached 1.34x what was counted
(100-character answers).
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec

from tokenomy.cache.entry import CacheEntry

_OBJECTS = 352  # key (40-char str), entry struct, its floats and ints, body header, node (set by RSS)
_TABLE = 100  # hash table and node pointers per entry, in the middle of their 68-136 at the bound
OVERHEAD = _OBJECTS + _TABLE
"""Bytes counted per entry beyond its body."""


def entry_size(entry: CacheEntry) -> int:
    """What one entry counts against the bound."""
    return len(entry.body) + OVERHEAD


class MemoryTier:
    """Recently used answers; entries past their expiry are dropped when read."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(max_bytes, 0)
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._used = 0

    def get(self, key: str, now: float, max_age: float | None) -> CacheEntry | None:
        """A fresh entry, or ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.expires:
            self.pop(key)
            return None
        self._entries.move_to_end(key)
        return entry if entry.fresh(now, max_age) else None

    def put(self, key: str, entry: CacheEntry) -> None:
        """Remember an entry, evicting the least recently used (entries larger than the whole budget are skipped)."""
        size = entry_size(entry)
        if size > self.max_bytes:
            return
        entries = self._entries
        self.pop(key)
        while self._used + size > self.max_bytes:
            self._used -= entry_size(entries.popitem(last=False)[1])
        # an exact-size copy: the body may sit in a much larger allocation (orjson output)
        entries[key] = msgspec.structs.replace(entry, body=bytes(memoryview(entry.body)))
        self._used += size

    def pop(self, key: str) -> None:
        """Forget one entry."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._used -= entry_size(entry)

    def clear(self) -> None:
        """Forget everything (after an invalidation)."""
        self._entries.clear()
        self._used = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes_used(self) -> int:
        """Current size in bytes."""
        return self._used
