"""Per-deployment RPM and TPM limits as token buckets.

A request takes one token from the RPM bucket and ``prompt + max_tokens`` from the TPM bucket
before it is sent; when its usage is known the TPM charge is settled to what it really used.
A bucket holds one minute of allowance and refills continuously. ``acquire`` never blocks: it
answers how long until the request would fit, and the route stage decides whether to try
another deployment, wait briefly, or answer 429.

The buckets live behind :class:`Limiter` / :class:`LimiterFactory` so that a shared store (Redis,
for several gateway processes) can replace the in-process one; hence ``acquire`` is async.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

Clock = Callable[[], float]


class Limiter(Protocol):
    """The RPM/TPM budget of one deployment."""

    async def acquire(self, tokens: int) -> float:
        """Take one request and ``tokens`` tokens: 0.0 when taken, else seconds until they fit (nothing taken)."""

    def settle(self, charged: int, used: int) -> None:
        """Correct an earlier charge of ``charged`` tokens to the ``used`` ones; must not block (a shared
        store sends it in the background)."""


class LimiterFactory(Protocol):
    """Creates the limiter of a deployment; ``key`` names it across processes."""

    def limiter(self, key: str, rpm: int | None, tpm: int | None) -> Limiter:
        """The limiter for ``key`` with these per-minute limits (at least one is set)."""


class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity`` per minute; the level may go negative (debt)."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits (0 if it does now). An amount over capacity waits for a full bucket."""
        level = self.level + (now - self.stamp) * self.rate
        self.level = level if level < self.capacity else self.capacity
        self.stamp = now
        need = amount if amount < self.capacity else self.capacity
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def add(self, amount: float) -> None:
        """Put back ``amount`` (negative: take it), never above capacity."""
        level = self.level + amount
        self.level = level if level < self.capacity else self.capacity


class LocalLimiter:
    """In-process token buckets of one deployment (one event loop, so no lock is needed)."""

    __slots__ = ("_clock", "rpm", "tpm")

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock = time.monotonic) -> None:
        now = clock()
        self._clock = clock
        self.rpm = TokenBucket(rpm, now) if rpm else None
        self.tpm = TokenBucket(tpm, now) if tpm else None

    def try_acquire(self, tokens: int) -> float:
        """The synchronous body of :meth:`acquire`."""
        now = self._clock()
        rpm, tpm = self.rpm, self.tpm
        wait = rpm.wait_for(1.0, now) if rpm is not None else 0.0
        if tpm is not None:
            wait = max(wait, tpm.wait_for(tokens, now))
        if wait > 0.0:
            return wait
        if rpm is not None:
            rpm.level -= 1.0
        if tpm is not None:
            tpm.level -= tokens
        return 0.0

    async def acquire(self, tokens: int) -> float:
        """Take one request and ``tokens`` tokens, or say how long until they fit."""
        return self.try_acquire(tokens)

    def settle(self, charged: int, used: int) -> None:
        """Refund (or charge) the difference between the estimate and the real usage."""
        if self.tpm is not None and charged != used:
            self.tpm.add(charged - used)


class LocalLimiters:
    """The default :class:`LimiterFactory`: buckets in this process, shared by deployments with the same key."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._made: dict[str, LocalLimiter] = {}

    def limiter(self, key: str, rpm: int | None, tpm: int | None) -> Limiter:
        """One limiter per key (a deployment listed under two models shares its budget)."""
        found = self._made.get(key)
        if found is None:
            found = self._made[key] = LocalLimiter(rpm, tpm, self._clock)
        return found
