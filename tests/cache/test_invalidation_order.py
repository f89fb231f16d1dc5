"""An invalidation is ordered after the answers this process cached before it (real SQLite store)."""

from __future__ import annotations

import time
from pathlib import Path

from tokenomy.cache.entry import CacheEntry
from tokenomy.cache.service import CacheService
from tokenomy.cache.stores.sqlite import SqliteCacheStore


async def test_an_answer_queued_for_level_two_before_an_invalidation_does_not_land_after_it(tmp_path: Path) -> None:
    service = CacheService(1 << 20, SqliteCacheStore(tmp_path / "cache.db"))
    now = time.time()
    service.put("k", CacheEntry(b"old", now, now + 300, "m", "chat", "t/a/"))  # queued: written in a batch later
    assert await service.invalidate(namespace=None, model="m", task=None) == 1  # written first, then deleted
    await service.drain()
    assert await service.get("k") == (None, "miss")
    await service.close()
