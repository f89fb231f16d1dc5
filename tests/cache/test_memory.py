"""The level-1 tier: an LRU bounded in bytes, whose count describes the memory it really holds."""

from __future__ import annotations

import gc
import hashlib
import time
import tracemalloc

import orjson
import pytest

from tokenomy.cache.entry import CacheEntry
from tokenomy.cache.memory import MemoryTier, entry_size

NOW = time.time()


def _entry(i: int, size: int = 100) -> tuple[str, CacheEntry]:
    """An entry built as the gateway builds one (orjson body, hex key, its own times and token counts)."""
    body = orjson.dumps({"id": f"chatcmpl-{i}", "choices": [{"message": {"content": "x" * size}}], "usage": {}})
    key = hashlib.blake2b(str(i).encode(), digest_size=20).hexdigest()
    now = time.time()
    return key, CacheEntry(body, now, now + 3600, "m", "t", "n/", 300 + i % 1000, size // 4 + i % 7)


def test_the_least_recently_used_entry_is_evicted_first() -> None:
    keys = [_entry(i)[0] for i in range(4)]
    tier = MemoryTier(3 * entry_size(_entry(0)[1]))
    for i in range(3):
        tier.put(*_entry(i))
    assert tier.get(keys[0], NOW, None) is not None  # 0 is now the most recently used
    tier.put(*_entry(3))
    assert len(tier) == 3
    assert tier.get(keys[1], NOW, None) is None, "the least recently used went"
    assert all(tier.get(keys[i], NOW, None) is not None for i in (0, 2, 3))
    assert tier.bytes_used <= tier.max_bytes


def test_replacing_a_key_counts_it_once_and_pop_and_clear_give_the_bytes_back() -> None:
    tier = MemoryTier(10**6)
    key, entry = _entry(1)
    tier.put(key, entry)
    tier.put(key, entry)
    assert len(tier) == 1 and tier.bytes_used == entry_size(entry)
    tier.pop(key)
    tier.pop(key)  # twice: nothing to forget
    assert len(tier) == 0 and tier.bytes_used == 0
    for i in range(5):
        tier.put(*_entry(i))
    tier.clear()
    assert len(tier) == 0 and tier.bytes_used == 0


def test_expired_entries_are_dropped_and_max_age_is_honoured() -> None:
    tier = MemoryTier(10**6)
    key, entry = _entry(1)
    tier.put(key, entry)
    assert tier.get(key, entry.created + 10, 5) is None, "older than max-age: not served..."
    assert tier.get(key, entry.created + 10, None) is not None, "...but kept"
    assert tier.get(key, entry.expires, None) is None
    assert len(tier) == 0 and tier.bytes_used == 0, "expired: dropped"


def test_entries_larger_than_the_bound_and_a_zero_bound_store_nothing() -> None:
    key, entry = _entry(1, size=4000)
    for bound in (0, entry_size(entry) - 1):
        tier = MemoryTier(bound)
        tier.put(key, entry)
        assert len(tier) == 0 and tier.bytes_used == 0 and tier.get(key, NOW, None) is None


@pytest.mark.parametrize("size", [100, 1_000, 4_000])
def test_the_count_matches_what_the_tier_holds_after_its_entries_turn_over(size: int) -> None:
    """Python's own allocations (tracemalloc) for the tier's contents are within 20% of its count,
    when first full and after three full turnovers (before: the hash tables of cachetools' LRU doubled at
    the first turnover and the tier held ~1.3x its count at 100-character answers)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tier = MemoryTier(2 * 2**20)
        i = 0
        while len(tier) == i:
            tier.put(*_entry(i, size))
            i += 1
        held, ratios = len(tier), []
        for turn in range(4):
            for _ in range(held if turn else 0):
                tier.put(*_entry(i, size))
                i += 1
            gc.collect()
            ratios.append((tracemalloc.get_traced_memory()[0] - base) / tier.bytes_used)
    finally:
        tracemalloc.stop()
    assert all(0.8 <= r <= 1.2 for r in ratios), f"held / counted, first full then after each turnover: {ratios}"
