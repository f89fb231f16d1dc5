"""Per-key RPM and TPM limits: token buckets, in process or in Redis (shared by every gateway).

A bucket holds up to its per-minute limit and refills continuously (limit / 60 per second). A
request takes one request token and its prompt's tokens (capped at the TPM limit, so a large
prompt is never refused forever); its completion tokens are taken once it finishes, which may
leave the bucket in debt (down to minus the limit) so later requests wait.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit of one key: ``key`` names it (e.g. ``key_ab12:rpm``), ``per_minute`` is the limit."""

    key: str
    per_minute: int
    cost: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which bucket refused, and when it will have enough."""

    index: int
    retry_after_s: float


class RateLimiter(Protocol):
    """Where buckets live."""

    async def take(self, buckets: Sequence[Bucket]) -> Refusal | None:
        """Take every bucket's cost, all or none; the first bucket short of it refuses."""

    async def charge(self, bucket: Bucket) -> None:
        """Take ``bucket.cost`` unconditionally (negative: give back), after the request."""


class MemoryRateLimiter:
    """Buckets in this process."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}  # key -> (level, last update)

    def _level(self, bucket: Bucket, now: float) -> float:
        level, last = self._state.get(bucket.key, (float(bucket.per_minute), now))
        return min(float(bucket.per_minute), level + (now - last) * bucket.per_minute / 60.0)

    async def take(self, buckets: Sequence[Bucket]) -> Refusal | None:
        """Check and take in one synchronous step."""
        now = time.monotonic()
        levels = [self._level(b, now) for b in buckets]
        for i, (bucket, level) in enumerate(zip(buckets, levels, strict=True)):
            if level < bucket.cost:
                return Refusal(i, (bucket.cost - level) * 60.0 / bucket.per_minute)
        for bucket, level in zip(buckets, levels, strict=True):
            self._state[bucket.key] = (level - bucket.cost, now)
        return None

    async def charge(self, bucket: Bucket) -> None:
        """Take (or give back) tokens after the fact; debt allowed down to minus the limit."""
        now = time.monotonic()
        cap = float(bucket.per_minute)
        self._state[bucket.key] = (min(cap, max(-cap, self._level(bucket, now) - bucket.cost)), now)


_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local levels = {}
for i = 1, #KEYS do
  local cap, cost = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = tonumber(v[1]) or cap
  local last = tonumber(v[2]) or now
  level = math.min(cap, level + math.max(0, now - last) * cap / 60)
  if ARGV[#ARGV] == 'take' and level < cost then
    return {i - 1, tostring((cost - level) * 60 / cap)}
  end
  levels[i] = level
end
for i = 1, #KEYS do
  local cap, cost = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'l', tostring(math.min(cap, math.max(-cap, levels[i] - cost))), 't', tostring(now))
  redis.call('EXPIRE', KEYS[i], 180)
end
return {-1, '0'}
"""


class RedisRateLimiter:
    """Buckets in Redis: one Lua script checks and takes every bucket of a request."""

    PREFIX = "tokenomy:rate:"

    def __init__(self, redis: Any) -> None:
        self._script = redis.register_script(_TAKE)

    async def take(self, buckets: Sequence[Bucket]) -> Refusal | None:
        """Check and take atomically."""
        out = await self._run(buckets, "take")
        index = int(out[0])
        return None if index < 0 else Refusal(index, float(out[1]))

    async def charge(self, bucket: Bucket) -> None:
        """Take tokens after the fact."""
        await self._run([bucket], "charge")

    async def _run(self, buckets: Sequence[Bucket], mode: str) -> Any:
        args: list[Any] = []
        for b in buckets:
            args += [b.per_minute, repr(float(b.cost))]
        return await self._script(keys=[self.PREFIX + b.key for b in buckets], args=[*args, mode])
