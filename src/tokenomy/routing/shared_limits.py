"""Per-deployment RPM/TPM buckets shared by several gateway processes (Redis, or the workers' shared memory).

Adapts a shared :class:`~tokenomy.keys.limits.RateLimiter` to the route stage's :class:`Limiter`:
the key limits' atomic Redis buckets (``RedisRateLimiter``: one Lua script checks and takes every
bucket of a request), shared by every gateway on that Redis, or the buckets in the memory the
worker processes of ``serve --workers N`` share (``tokenomy.state.shared_memory``). If the store
cannot be reached the limiter lets the request through (logged once): an upstream 429 is still
handled by the health tracker, while refusing every request would turn a Redis outage into a
gateway outage.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tokenomy.keys.limits import Bucket, RateLimiter
from tokenomy.routing.limits import Limiter

log = logging.getLogger("tokenomy.routing")


class SharedLimiter:
    """One deployment's buckets in a shared :class:`RateLimiter`."""

    def __init__(self, rate: RateLimiter, key: str, rpm: int | None, tpm: int | None, owner: SharedLimiters) -> None:
        self._rate = rate
        self._rpm = Bucket(f"dep:{key}:rpm", rpm, 1.0) if rpm else None
        self._tpm_key, self._tpm = f"dep:{key}:tpm", tpm
        self._owner = owner
        self._charge_now = getattr(rate, "charge_now", None)  # shared memory: settles without a task

    async def acquire(self, tokens: int) -> float:
        """Take one request and ``tokens`` tokens atomically, or say how long until they fit."""
        buckets = [b for b in (self._rpm,) if b is not None]
        if self._tpm:
            buckets.append(Bucket(self._tpm_key, self._tpm, float(min(tokens, self._tpm))))
        try:
            refusal = await self._rate.take(buckets)
        except Exception as exc:  # Redis down: fail open (see the module docstring)
            self._owner.unavailable(exc)
            return 0.0
        return 0.0 if refusal is None else refusal.retry_after_s

    def settle(self, charged: int, used: int) -> None:
        """Correct the TPM charge in the background."""
        if self._tpm and charged != used:
            bucket = Bucket(self._tpm_key, self._tpm, float(used - charged))
            if self._charge_now is not None:
                self._charge_now(bucket)
            else:
                self._owner.background(self._rate.charge(bucket))


class SharedLimiters:
    """A :class:`~tokenomy.routing.limits.LimiterFactory` over a shared rate limiter."""

    def __init__(self, rate: RateLimiter) -> None:
        self._rate = rate
        self._made: dict[str, SharedLimiter] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned = False

    def limiter(self, key: str, rpm: int | None, tpm: int | None) -> Limiter:
        """One limiter per deployment key."""
        found = self._made.get(key)
        if found is None:
            found = self._made[key] = SharedLimiter(self._rate, key, rpm, tpm, self)
        return found

    def unavailable(self, exc: Exception) -> None:
        """Log a store failure once."""
        if not self._warned:
            log.error("shared rate limits unavailable (%s); letting requests through meanwhile", exc)
            self._warned = True

    def background(self, coro: Any) -> None:
        """Run a settlement without waiting for it."""

        async def run() -> None:
            try:
                await coro
            except Exception as exc:
                self.unavailable(exc)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
