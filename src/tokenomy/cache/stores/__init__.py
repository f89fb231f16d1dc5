"""Level-2 cache stores: SQLite (embedded default) or Redis (shared by several gateways)."""

from __future__ import annotations

from tokenomy.cache.stores.base import CacheStore, CacheUnavailable, EntryMeta
from tokenomy.config.cache import ExactCacheConfig

__all__ = ["CacheStore", "CacheUnavailable", "EntryMeta", "cache_store_for"]


def cache_store_for(config: ExactCacheConfig) -> CacheStore | None:
    """The level-2 store the config names, or ``None`` (store: none)."""
    if config.store == "none":
        return None
    if config.store == "redis":
        from tokenomy.cache.stores.redis import RedisCacheStore

        assert config.redis_url is not None  # the config validates this
        url = config.redis_url.resolve()
        if not url:
            raise ValueError(f"the cache redis_url variable ${{{config.redis_url.env}}} is not set")
        return RedisCacheStore(url)
    from tokenomy.cache.stores.sqlite import SqliteCacheStore

    return SqliteCacheStore(config.sqlite_path, config.max_store_bytes)
