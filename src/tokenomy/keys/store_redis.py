"""Keys in Redis, shared by every gateway: a revocation applies everywhere with the next request.

Layout (prefix ``tokenomy:keys:``): ``h:<sha256>`` holds the key's record as JSON, ``id:<id>`` its
hash, and the sorted set ``ids`` every id by creation time. A lookup is one ``GET``.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenomy.budgets.redis_client import redis_client
from tokenomy.keys.record import KeyRecord
from tokenomy.keys.store import KeyStoreUnavailable

PREFIX = "tokenomy:keys:"

# KEYS: id:<id>; ARGV: revocation time, prefix. Returns the record JSON (revoked set), or nil.
_REVOKE = """
local digest = redis.call('GET', KEYS[1])
if not digest then return nil end
local hkey = ARGV[2] .. 'h:' .. digest
local raw = redis.call('GET', hkey)
if not raw then return nil end
local rec = cjson.decode(raw)
if rec['revoked'] == nil or rec['revoked'] == cjson.null then
  rec['revoked'] = tonumber(ARGV[1])
  raw = cjson.encode(rec)
  redis.call('SET', hkey, raw)
end
return raw
"""


class RedisKeyStore:
    """Keys in Redis; every lookup reads Redis (no local copy to go stale)."""

    def __init__(self, url: str) -> None:
        self.description = "redis"
        self._redis: Any = redis_client(url)
        self._revoke = self._redis.register_script(_REVOKE)

    async def open(self) -> None:
        """Check that Redis answers."""
        await self._call(self._redis.ping())

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def lookup(self, digest: str) -> KeyRecord | None:
        """One ``GET``; revoked keys read as absent."""
        raw = await self._call(self._redis.get(PREFIX + "h:" + digest))
        if raw is None:
            return None
        record = KeyRecord.from_row(orjson.loads(raw))
        return None if record.revoked is not None else record

    async def add(self, record: KeyRecord, digest: str) -> None:
        """Store the record under its hash, index its id."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(PREFIX + "h:" + digest, orjson.dumps(record.to_row()), nx=True)
        pipe.set(PREFIX + "id:" + record.id, digest, nx=True)
        pipe.zadd(PREFIX + "ids", {record.id: record.created})
        done = await self._call(pipe.execute())
        if not done[0] or not done[1]:
            raise ValueError("the key store refused the key: its hash or id is already taken")

    async def list(self, include_revoked: bool = False) -> list[KeyRecord]:
        """Every key, oldest first."""
        ids = await self._call(self._redis.zrange(PREFIX + "ids", 0, -1))
        if not ids:
            return []
        digests = await self._call(self._redis.mget([PREFIX + "id:" + i.decode() for i in ids]))
        keys = [PREFIX + "h:" + d.decode() for d in digests if d is not None]
        raws = await self._call(self._redis.mget(keys)) if keys else []
        records = [KeyRecord.from_row(orjson.loads(raw)) for raw in raws if raw is not None]
        return [r for r in records if include_revoked or r.revoked is None]

    async def revoke(self, key_id: str, when: float) -> KeyRecord | None:
        """Mark revoked (atomically); every gateway refuses the key from its next request."""
        raw = await self._call(self._revoke(keys=[PREFIX + "id:" + key_id], args=[when, PREFIX]))
        return None if raw is None else KeyRecord.from_row(orjson.loads(raw))

    async def _call(self, awaitable: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            return await awaitable
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise KeyStoreUnavailable(f"the redis key store is unavailable: {exc}") from exc
