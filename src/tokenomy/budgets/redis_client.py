"""The Redis client of the key store, budgets and rate limits: a pool that waits for a free
connection instead of failing when every one is busy (hundreds of requests may be in flight)."""

from __future__ import annotations

from typing import Any

MAX_CONNECTIONS = 64
WAIT_S = 5.0


def redis_client(url: str) -> Any:
    """An asyncio Redis client for ``url`` (a ``redis://`` or ``rediss://`` URL)."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=WAIT_S)
    return aioredis.Redis(connection_pool=pool)
