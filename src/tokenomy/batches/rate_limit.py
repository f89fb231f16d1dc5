"""One request rate for a whole offline job: a token bucket every worker reserves from.

``tokenomy batch run --rpm N`` paces the job to ``N`` requests a minute in total. In process the
bucket is an object; on Ray it is one actor (``ray.remote(TokenBucket)``) that every shard task
reserves from, so the limit holds across the cluster however many workers run. A reservation
never blocks the bucket: it takes the token now (the balance may go below zero) and answers how
long the caller must wait before sending, so concurrent callers queue up fairly in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate_per_s: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate, self.burst, self._clock = rate_per_s, burst, clock
        self._tokens = burst
        self._at = clock()
        self.reserved = 0

    def reserve(self, n: float = 1.0) -> float:
        """Take ``n`` tokens; the seconds to wait before using them (0 when they were there)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate) - n
        self._at = now
        self.reserved += 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def count(self) -> int:
        """How many reservations were made (for the job's summary)."""
        return self.reserved


def local_pace(bucket: TokenBucket) -> Callable[[], Awaitable[None]]:
    """Pacing from a bucket in this process."""

    async def pace() -> None:
        await asyncio.sleep(bucket.reserve())

    return pace


def actor_pace(actor: Any) -> Callable[[], Awaitable[None]]:
    """Pacing from a bucket actor on Ray (its handle; a reservation is one actor call)."""

    async def pace() -> None:
        await asyncio.sleep(await actor.reserve.remote())

    return pace
