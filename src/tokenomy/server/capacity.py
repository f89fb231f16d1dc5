"""The in-progress limit from what the event loop completes (``server.shed_control: little``).

The other controllers (``tokenomy.server.overload``) move the limit on model calls in progress by
how late the gateway runs: a fixed back-off, or a cut in proportion to the lateness. Both judge
*how much* to cut from lateness alone, and lateness also comes from work the limit does not govern
(shedding a flood, accepting connections), so the limit swings: it collapses while late, then
grows back quickly, and under twice the load the core can take the calls in progress at a time
run to about ten times those at saturation -- each of them then costs 1.4-1.7x more CPU
(``docs/benchmarks.md``, where the gateway's CPU goes at 2x saturation).

This controller takes *how many* from Little's law instead, as BBR takes a congestion window
from the bottleneck rate times the round-trip time, and brpc's and Envoy's adaptive limiters from
the no-load latency (those and Netflix's concurrency-limits were read before writing it; the
code is ours):

    bound = rate x (quickest in-progress time + target)

- **rate**: the most model calls answered per second in any 50 ms window of the last second (the
  rate the loop has shown it can complete; a max filter, as BBR's bottleneck bandwidth);
- **quickest in-progress time**: the smallest mean time in progress (from a call's body to its
  answer, upstream wait included) of the last 10 s's windows that were on time and answered
  enough calls to count -- a window's mean is its in-progress seconds over the calls it answered
  (Little's law again). Late windows are left out, so the queueing the limit allows does not feed
  back into the estimate; with none on time, the last estimate stays;
- **target**: ``server.shed_loop_lag_ms``.

With at most ``bound`` in progress, by Little's law, a call spends at most about the target longer
in progress than when nothing queued -- what the admitted-latency target asks -- whatever the
upstream's own latency (long streams make a large bound, not a low one).

The limit moves once per window:

- **late** (the loop's own lag or the window's smallest queue delay over the target, with at least
  ``min_in_flight`` calls of our own in progress): down toward ``bound``, by at most half in one
  window (never up, never below ``min_in_flight``). Lateness decides *when*; Little's law *how
  far*: work the limit does not govern can keep the loop late, and cutting below the bound would
  only idle the core;
- **on time with the limit in use** (at least half of it in progress): up by sqrt(limit), as a
  congestion window probes, but while the gateway was late within the last 2 s no further than
  ``headroom`` x the bound (so the limit does not swing back to the ceiling between late windows);
- **on time and unused**: ``growth`` x back toward the ceiling (``server.max_in_flight``).

Until the first estimates exist it backs off like the ``backoff`` controller.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from tokenomy.server.overload import OverloadDetector
from tokenomy.telemetry import metrics


class CapacityDetector(OverloadDetector):
    """The in-progress limit bounded by Little's law on the gateway's own measurements.

    :attr:`completed` (calls answered) and :attr:`busy_s` (the integral of the calls in progress
    over time) are kept by the admission; :meth:`tick` reads both once per window.
    """

    rate_windows = 20  # the rate's max filter: the last second of 50 ms windows
    time_windows = 200  # the in-progress time's min filter: the last 10 s of windows
    min_done = 10  # calls a window must answer for its mean in-progress time to count
    headroom = 1.5  # while recently late, probing stops at this many times the bound
    hold_s = 2.0  # "recently late": within this long
    max_drop = 0.5  # the most the limit falls in one late window (to half)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As :class:`OverloadDetector`."""
        super().__init__(*args, **kwargs)
        self.quickest_s: float | None = None  # the quickest mean in-progress time (min filter)
        self.bound: int | None = None  # rate x (quickest + target): the limit a late window cuts to
        self._rates: deque[float] = deque(maxlen=self.rate_windows)
        self._times: deque[float] = deque(maxlen=self.time_windows)
        self._counted = 0
        self._busy_at = 0.0
        self._at: float | None = None
        self._late_until = -math.inf

    def lateness(self) -> float:
        """Seconds late now: the loop's own smoothed lag, or the last window's queue delay if larger."""
        return max(self.lag.own_lag_s, self.queue_delay_s)

    def _measure(self, now: float, late: bool) -> None:
        """Fold the window just closed into the rate and in-progress time estimates."""
        done, self._counted = self.completed - self._counted, self.completed
        busy, self._busy_at = self.busy_s - self._busy_at, self.busy_s
        at, self._at = self._at, now
        if at is None or now <= at:
            return
        self._rates.append(done / (now - at))
        if done >= self.min_done and not late:
            self._times.append(busy / done)
        self.rate = max(self._rates)
        if self._times:
            self.quickest_s = min(self._times)
        if self.quickest_s is not None and self.rate > 0:
            bound = math.ceil(self.rate * (self.quickest_s + self.delay_target_s) - 1e-6)  # not 76 for 75.0000001
            self.bound = max(self.min_in_flight, min(self.ceiling, bound))
        self.floor = self.bound if self.bound is not None else self.min_in_flight

    def tick(self, now: float, active: int) -> None:
        """Move the limit once per window (``active``: model calls in progress)."""
        if not self._window_over(now):
            return
        late = self.lateness() > self.delay_target_s
        self._measure(now, late)
        limit, bound = self.limit, self.bound
        if late:
            self._late_until = now + self.hold_s
            if active >= self.min_in_flight:  # lateness with this many of our own in progress: ours
                held = min(limit, active)
                # at most halved in one window: a bound estimated from quick calls (cache hits, say)
                # must not cut a gateway of long streams to a handful at once
                cut = int(held * self.backoff) if bound is None else max(bound, int(held * self.max_drop))
                self.limit = max(self.min_in_flight, min(limit, cut))
        elif 2 * active >= limit:  # on time and the limit is what holds admission: probe upward
            cap = self.ceiling
            if bound is not None and now < self._late_until:
                cap = min(cap, max(limit, int(self.headroom * bound)))
            self.limit = min(cap, limit + max(1, math.isqrt(limit)))
        elif limit < self.ceiling:  # on time and unused: back toward the ceiling
            self.limit = min(self.ceiling, max(limit + 1, int(limit * self.growth)))
        metrics.IN_FLIGHT_LIMIT.set(self.limit)
