"""Budget counters in Redis, shared by every gateway; check-and-reserve is one Lua script.

Each counter is a hash ``tokenomy:budget:<counter>`` with ``s`` (spent) and ``r`` (reserved),
expiring an hour after its period ends. Open reservations are also listed (sorted set ``res`` by
deadline, hash ``resinfo``): one a gateway never settled (it died) is released after
``reservation_ttl_s`` by the next reservation. Standalone Redis (the scripts touch keys they
read from ``resinfo``, which Redis Cluster would refuse).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokenomy.budgets.redis_client import redis_client
from tokenomy.budgets.store import OK, Counter, Verdict

PREFIX = "tokenomy:budget:"
_RES = PREFIX + "res"
_INFO = PREFIX + "resinfo"

# KEYS: counters..., res, resinfo.  ARGV: estimate, check_soft, reservation id, ttl,
# then per counter: hard limit (-1: none), soft limit (-1: none), expire-at.
_RESERVE = """
local n = #KEYS - 2
local res, info = KEYS[n + 1], KEYS[n + 2]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', res, '-inf', now, 'LIMIT', 0, 64)) do
  local held = redis.call('HGET', info, rid)
  if held then
    local parts = {}
    for part in string.gmatch(held, '[^\\n]+') do parts[#parts + 1] = part end
    for i = 2, #parts do redis.call('HINCRBYFLOAT', parts[i], 'r', -tonumber(parts[1])) end
  end
  redis.call('ZREM', res, rid)
  redis.call('HDEL', info, rid)
end
local est = tonumber(ARGV[1])
local soft = nil
for i = 1, n do
  local base = 4 + (i - 1) * 3
  local hard, softlim = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local v = redis.call('HMGET', KEYS[i], 's', 'r')
  local s, r = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if hard >= 0 and s + r + est > hard + 1e-9 then
    return {'hard', i - 1, tostring(s), tostring(r)}
  end
  if ARGV[2] == '1' and soft == nil and softlim >= 0 and s + r + est > softlim + 1e-9 then
    soft = {'soft', i - 1, tostring(s), tostring(r)}
  end
end
if soft then return soft end
local names = {ARGV[1]}
for i = 1, n do
  redis.call('HINCRBYFLOAT', KEYS[i], 'r', ARGV[1])
  redis.call('EXPIREAT', KEYS[i], ARGV[4 + (i - 1) * 3 + 3])
  names[#names + 1] = KEYS[i]
end
redis.call('ZADD', res, now + tonumber(ARGV[4]), ARGV[3])
redis.call('HSET', info, ARGV[3], table.concat(names, '\\n'))
return {'ok'}
"""

# KEYS: counters..., res, resinfo.  ARGV: reservation id, estimate, actual, then expire-at per counter.
_SETTLE = """
local n = #KEYS - 2
local held = redis.call('ZREM', KEYS[n + 1], ARGV[1])
redis.call('HDEL', KEYS[n + 2], ARGV[1])
for i = 1, n do
  if held == 1 then redis.call('HINCRBYFLOAT', KEYS[i], 'r', -tonumber(ARGV[2])) end
  if tonumber(ARGV[3]) ~= 0 then redis.call('HINCRBYFLOAT', KEYS[i], 's', ARGV[3]) end
  redis.call('EXPIREAT', KEYS[i], ARGV[3 + i])
end
return held
"""


def _expire_at(counter: Counter) -> int:
    return int(counter.resets_at) + 3600


class RedisBudgetStore:
    """Counters in Redis."""

    def __init__(self, url: str, reservation_ttl_s: float) -> None:
        self.redis: Any = redis_client(url)
        self._ttl = reservation_ttl_s
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)

    async def open(self) -> None:
        """Check that Redis answers."""
        await self.redis.ping()

    async def close(self) -> None:
        """Close the pool."""
        await self.redis.aclose()

    async def reserve(
        self, counters: Sequence[Counter], estimate: float, reservation: str, check_soft: bool
    ) -> Verdict:
        """One script: reap stale reservations, check every limit, reserve on every counter."""
        args: list[Any] = [repr(estimate), "1" if check_soft else "0", reservation, self._ttl]
        for c in counters:
            args += [_limit(c.hard_usd), _limit(c.soft_usd), _expire_at(c)]
        keys = [PREFIX + c.key for c in counters] + [_RES, _INFO]
        out = await self._reserve(keys=keys, args=args)
        status = out[0].decode()
        if status == "ok":
            return OK
        return Verdict(status, int(out[1]), float(out[2]), max(0.0, float(out[3])))

    async def settle(self, counters: Sequence[Counter], estimate: float, actual: float, reservation: str) -> None:
        """One script: release the reservation (if still held) and add the actual cost."""
        keys = [PREFIX + c.key for c in counters] + [_RES, _INFO]
        args: list[Any] = [reservation, repr(estimate), repr(actual), *(_expire_at(c) for c in counters)]
        await self._settle(keys=keys, args=args)

    async def read(self, keys: Sequence[str]) -> list[tuple[float, float]]:
        """``(spent, reserved)`` per counter key."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(PREFIX + key, "s", "r")
        rows = await pipe.execute()
        return [(float(s or 0.0), max(0.0, float(r or 0.0))) for s, r in rows]


def _limit(usd: float | None) -> str:
    return "-1" if usd is None else repr(usd)
