"""The budget counters: spend and reservations per (subject, period), and the in-process store.

A request reserves its estimated cost on every counter that applies to it, all or none, and only
if no hard limit would be passed (``spent + reserved + estimate <= limit``); when it finishes the
reservation is released and the actual cost added (``settle``). The check and the reservation are
one step with no ``await`` in between (in process) or one Lua script (Redis), so concurrent
requests cannot all pass the same check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from tokenomy.budgets.periods import Period


@dataclass(frozen=True, slots=True)
class Counter:
    """One budget counter a request is checked against and reserves on."""

    key: str  # e.g. "team:research:d2025-01-31"
    subject: str  # e.g. "team 'research'" (for messages)
    period: Period
    resets_at: float  # epoch seconds
    hard_usd: float | None = None
    soft_usd: float | None = None
    downgrade_to: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a reservation attempt; ``index`` and the amounts describe the counter that refused."""

    status: Literal["ok", "hard", "soft"]
    index: int = -1
    spent: float = 0.0
    reserved: float = 0.0


OK = Verdict("ok")
EPSILON_USD = 1e-9
"""Slack for float rounding: a request that lands exactly on the limit is admitted."""


class BudgetStore(Protocol):
    """Where counters live (this process, or Redis)."""

    async def reserve(
        self, counters: Sequence[Counter], estimate: float, reservation: str, check_soft: bool
    ) -> Verdict:
        """Atomically: refuse if a hard limit (or, with ``check_soft``, a soft one) would be passed, else reserve."""

    async def settle(self, counters: Sequence[Counter], estimate: float, actual: float, reservation: str) -> None:
        """Release ``reservation`` (once) and add the actual cost."""

    async def read(self, keys: Sequence[str]) -> list[tuple[float, float]]:
        """``(spent, reserved)`` of each counter key."""

    async def open(self) -> None:
        """Connect."""

    async def close(self) -> None:
        """Disconnect."""


class MemoryBudgetStore:
    """Counters in this process's memory (lost on restart; one process only)."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._held: set[str] = set()
        self._resets: dict[str, float] = {}

    async def reserve(
        self, counters: Sequence[Counter], estimate: float, reservation: str, check_soft: bool
    ) -> Verdict:
        """Check and reserve in one synchronous step (nothing else runs on the loop meanwhile)."""
        return self.reserve_now(counters, estimate, reservation, check_soft)

    def reserve_now(self, counters: Sequence[Counter], estimate: float, reservation: str, check_soft: bool) -> Verdict:
        """The synchronous body of :meth:`reserve`."""
        spent, reserved = self._spent, self._reserved
        soft: Verdict | None = None
        for i, counter in enumerate(counters):
            s, r = spent.get(counter.key, 0.0), reserved.get(counter.key, 0.0)
            if counter.hard_usd is not None and s + r + estimate > counter.hard_usd + EPSILON_USD:
                return Verdict("hard", i, s, r)
            if (
                check_soft
                and soft is None
                and counter.soft_usd is not None
                and s + r + estimate > counter.soft_usd + EPSILON_USD
            ):
                soft = Verdict("soft", i, s, r)
        if soft is not None:
            return soft
        for counter in counters:
            reserved[counter.key] = reserved.get(counter.key, 0.0) + estimate
            self._resets[counter.key] = counter.resets_at
        self._held.add(reservation)
        return OK

    async def settle(self, counters: Sequence[Counter], estimate: float, actual: float, reservation: str) -> None:
        """Release and add the actual cost."""
        self.settle_now(counters, estimate, actual, reservation)

    def settle_now(self, counters: Sequence[Counter], estimate: float, actual: float, reservation: str) -> None:
        """The synchronous body of :meth:`settle`."""
        held = reservation in self._held
        self._held.discard(reservation)
        for counter in counters:
            if held:
                self._reserved[counter.key] = max(0.0, self._reserved.get(counter.key, 0.0) - estimate)
            if actual:
                self._spent[counter.key] = self._spent.get(counter.key, 0.0) + actual
            self._resets[counter.key] = counter.resets_at

    async def read(self, keys: Sequence[str]) -> list[tuple[float, float]]:
        """``(spent, reserved)`` per key."""
        return [(self._spent.get(k, 0.0), self._reserved.get(k, 0.0)) for k in keys]

    def prune(self, now: float) -> None:
        """Forget counters of periods that ended more than an hour ago."""
        for key, resets in list(self._resets.items()):
            if resets + 3600 < now:
                for table in (self._spent, self._reserved, self._resets):
                    table.pop(key, None)

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to close."""
