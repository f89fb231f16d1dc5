"""Balancing strategies: which of a model's usable deployments takes the next request.

Each strategy sees only the deployments that are usable now (healthy, not cooling); the pool
removes a deployment whose rate limit is spent and asks again. Ties rotate, so equal
deployments share the load instead of the first one taking everything.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tokenomy.routing.pool import Slot


class Balancer(Protocol):
    """A strategy; ``name`` is what ``ctx.route`` and the ledger show."""

    name: str

    def pick(self, slots: Sequence[Slot], stream: bool) -> Slot:
        """One of ``slots`` (never empty)."""


class RoundRobin:
    """Each usable deployment in turn."""

    name = "round-robin"

    def __init__(self, slots: Sequence[Slot]) -> None:
        self._turn = itertools.count()

    def pick(self, slots: Sequence[Slot], stream: bool) -> Slot:
        return slots[next(self._turn) % len(slots)]


class Weighted:
    """At random, in proportion to each deployment's ``weight``."""

    name = "weighted"

    def __init__(self, slots: Sequence[Slot], rng: random.Random | None = None) -> None:
        self._all = slots
        self._cumulative = list(itertools.accumulate(slot.weight for slot in slots))
        self._random = (rng or random.Random()).random

    def pick(self, slots: Sequence[Slot], stream: bool) -> Slot:
        if slots is self._all:  # the usual case: every deployment usable, weights precomputed
            cumulative = self._cumulative
        else:
            cumulative = list(itertools.accumulate(slot.weight for slot in slots))
        index = bisect.bisect_right(cumulative, self._random() * cumulative[-1])
        return slots[min(index, len(slots) - 1)]


class _Lowest:
    """The deployment with the lowest score; ties go round-robin."""

    name = ""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self._turn = itertools.count()

    def scores(self, slots: Sequence[Slot], stream: bool) -> list[float]:
        """One score per slot, lower is better (one comprehension: this runs on every request)."""
        raise NotImplementedError

    def pick(self, slots: Sequence[Slot], stream: bool) -> Slot:
        scores = self.scores(slots, stream)
        low = min(scores)
        ties = scores.count(low)
        if ties == 1:
            return slots[scores.index(low)]
        nth = next(self._turn) % ties  # the n-th of the tied deployments, in turn
        index = -1
        for _ in range(nth + 1):
            index = scores.index(low, index + 1)
        return slots[index]


class LeastBusy(_Lowest):
    """The deployment with the fewest requests in flight through this gateway."""

    name = "least-busy"

    def scores(self, slots: Sequence[Slot], stream: bool) -> list[float]:
        return [slot.stats.in_flight for slot in slots]


class LowestLatency(_Lowest):
    """The lowest expected wait: EWMA latency (streams: time to first token) x (in flight + 1).

    A deployment not measured yet is assumed as fast as the fastest measured one, so it gets its
    share of traffic until its first answers (or failures) give it an average of its own.
    """

    name = "lowest-latency"

    def scores(self, slots: Sequence[Slot], stream: bool) -> list[float]:
        stats = [slot.stats for slot in slots]
        if stream:  # DeploymentStats.average, inlined: this runs over every deployment on every request
            averages = [s.ttft if s.ttft is not None else s.latency for s in stats]
        else:
            averages = [s.latency if s.latency is not None else s.ttft for s in stats]
        known = [a for a in averages if a is not None]
        prior = min(known) if known else 1.0
        return [(prior if a is None else a) * (s.in_flight + 1) for a, s in zip(averages, stats, strict=True)]


class Cheapest(_Lowest):
    """The healthy deployment with the lowest price per token (input + output; unknown prices last)."""

    name = "cheapest"

    def scores(self, slots: Sequence[Slot], stream: bool) -> list[float]:
        return [slot.price for slot in slots]


STRATEGIES: dict[str, Callable[[Sequence[Slot]], Balancer]] = {
    RoundRobin.name: RoundRobin,
    Weighted.name: Weighted,
    LeastBusy.name: LeastBusy,
    LowestLatency.name: LowestLatency,
    Cheapest.name: Cheapest,
}


def balancer_for(strategy: str, slots: Sequence[Slot]) -> Balancer:
    """The balancer named ``strategy`` over ``slots``."""
    return STRATEGIES[strategy](slots)
