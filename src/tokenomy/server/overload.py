"""Overload detection: the gateway's own queueing, not the machine's.

The number of requests in flight alone says little about load on a gateway: thousands of streams
that wait on upstream tokens cost almost nothing, while a burst of short requests can saturate
the core. What does measure saturation is how long work waits for the event loop: how late a
timer fires (the *loop lag*) and how long a request waits between its head arriving and the
gateway starting on it (the *queue delay*, stamped by ``tokenomy.server.protocol``).

Both also grow when *other* processes take the CPU (or a model loads in this process), which is
not overload: shedding then would refuse a lone request on a busy host. So the loop lag leaves
out the time the loop's thread waited for a CPU held by others (Linux schedstat), and lateness
only counts as overload together with evidence of the gateway's own load: at least
``min_in_flight`` requests in progress. The queue delay is judged CoDel-style, by its smallest value over a short
window (a standing queue, not a burst). Lateness moves an adaptive limit on the model
calls in progress (:class:`OverloadDetector`); past it, new requests are refused at once with 503
and ``Retry-After`` -- at the protocol, from a pre-built response -- instead of joining a queue that
would add seconds to every request behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from tokenomy.telemetry import metrics


class LoopLagMonitor:
    """Tracks the event loop's lateness; ``overloaded`` is true while the part of it that is the
    gateway's own doing exceeds ``limit_s``.

    Where Linux reports it (``/proc/self/task/<tid>/schedstat``), the time the loop's thread spent
    waiting for a CPU that other processes held is subtracted from each lateness sample: that
    lateness is the host's, not the gateway's (``own_lag_s``; ``lag_s`` keeps the whole of it).
    """

    def __init__(self, limit_s: float, interval_s: float = 0.01, smoothing: float = 0.3) -> None:
        self.limit_s = limit_s
        self.interval_s = interval_s
        self.smoothing = smoothing
        self.lag_s = 0.0
        self.own_lag_s = 0.0
        self.overloaded = False
        self._task: asyncio.Task[None] | None = None
        self._schedstat: Any = None
        self.on_sample: Callable[[], None] | None = None  # called after each sample (the limit's clock)

    def start(self) -> None:
        """Begin sampling (idempotent; needs a running loop)."""
        if self._task is None and self.limit_s > 0:
            try:  # the loop's own thread: its run-queue wait
                self._schedstat = open(f"/proc/self/task/{threading.get_native_id()}/schedstat", "rb")  # noqa: SIM115
            except OSError:
                self._schedstat = None
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    def _cpu_wait_s(self) -> float:
        """Seconds the loop's thread has waited for a CPU (0 where the kernel does not say)."""
        stat = self._schedstat
        if stat is None:
            return 0.0
        try:
            stat.seek(0)
            return int(stat.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._schedstat is not None:
            self._schedstat.close()
            self._schedstat = None

    async def _run(self) -> None:
        interval = self.interval_s
        while True:
            waited = self._cpu_wait_s()
            expected = time.perf_counter() + interval
            await asyncio.sleep(interval)
            lag = max(0.0, time.perf_counter() - expected)
            self.observe(lag, max(0.0, lag - (self._cpu_wait_s() - waited)))
            if self.on_sample is not None:
                self.on_sample()

    def observe(self, lag_s: float, own_s: float | None = None) -> None:
        """Fold one lateness sample (and the part of it that is the gateway's own) into the averages."""
        self.lag_s += self.smoothing * (lag_s - self.lag_s)
        own = lag_s if own_s is None else own_s
        self.own_lag_s += self.smoothing * (own - self.own_lag_s)
        self.overloaded = self.own_lag_s > self.limit_s
        metrics.LOOP_LAG.set(self.lag_s)


class OverloadDetector:
    """How many model calls may be in progress at once: a limit that follows the gateway's own
    queueing, as a congestion window follows a network's.

    Every ``window_s`` the detector asks whether the gateway ran late: its loop's own lag (above)
    over ``delay_target_s``, or -- where the server stamps arrivals -- the smallest queue delay of
    the window's requests over it (CoDel's test: a standing queue, not a burst). Late: the limit
    drops to ``backoff`` x the requests in progress (never below ``min_in_flight``, so a request on a
    busy host, or during a model load, is never refused for lateness that is not the gateway's
    doing). On time: it grows by ``growth``, back toward ``ceiling`` once the overload is over (a
    burst of long streams after it is not refused for long). A request that finds the limit
    reached is shed at once, and cheaply, instead of joining a queue that would add seconds to
    every request behind it: the requests already admitted stay fast, and the work the core can do
    goes to requests that will be answered in time.
    """

    def __init__(
        self,
        lag: LoopLagMonitor,
        delay_target_s: float,
        min_in_flight: int,
        ceiling: int = 1 << 30,
        window_s: float = 0.05,
        backoff: float = 0.8,
        growth: float = 1.25,
    ) -> None:
        self.lag = lag
        self.delay_target_s = delay_target_s
        self.min_in_flight = min_in_flight
        self.ceiling = ceiling
        self.window_s = window_s
        self.backoff = backoff
        self.growth = growth
        self.limit = ceiling
        self.queue_delay_s = 0.0  # the smallest delay of the last complete window
        self.completed = 0  # model calls answered (counted by the admission; :class:`GradientDetector` reads it)
        self.busy_s = 0.0  # in-progress seconds, the integral of the calls in progress (the admission's)
        self.rate = 0.0  # of those, per second, smoothed over windows (:class:`GradientDetector`)
        self.floor = min_in_flight  # the lowest the limit may go now (:class:`GradientDetector`)
        self._window_min = float("inf")
        self._next = 0.0

    def observe(self, delay_s: float) -> None:
        """Note one request's queue delay (seconds between its head arriving and the app starting)."""
        if delay_s < self._window_min:
            self._window_min = delay_s

    def late(self) -> bool:
        """Whether the gateway's own queueing is over the target now (loop lag, or the last window's delay)."""
        return self.lag.overloaded or self.queue_delay_s > self.delay_target_s

    def _window_over(self, now: float) -> bool:
        """Close the window if its time is up (its smallest queue delay becomes the current one);
        False while it runs (or with shedding off)."""
        if now < self._next or self.delay_target_s <= 0:
            return False
        self._next = now + self.window_s
        self.queue_delay_s = 0.0 if self._window_min == float("inf") else self._window_min
        self._window_min = float("inf")
        metrics.QUEUE_DELAY.set(self.queue_delay_s)
        return True

    def tick(self, now: float, active: int) -> None:
        """Move the limit once per window (``active``: model calls in progress, counted where they arrive)."""
        if not self._window_over(now):
            return
        if self.late():
            if active >= self.min_in_flight:  # lateness with this many of our own in progress: ours
                self.limit = max(self.min_in_flight, int(min(self.limit, active) * self.backoff))
        elif self.limit < self.ceiling:  # on time: back toward the ceiling
            self.limit = min(self.ceiling, max(self.limit + 1, int(self.limit * self.growth)))
        metrics.IN_FLIGHT_LIMIT.set(self.limit)

    def overloaded(self, in_flight: int) -> bool:
        """Whether a new request, with ``in_flight`` in progress, should be shed now."""
        return in_flight >= self.limit


class GradientDetector(OverloadDetector):
    """The in-progress limit as a controller that holds the gateway's lateness near its target
    (``server.shed_control: gradient``), in the style of Netflix's concurrency-limits gradient and
    Envoy's adaptive concurrency, instead of backing off by a fixed factor while late.

    Every window it reads the *lateness*: the loop's own smoothed lag, or the window's smallest
    queue delay where that is larger. Then:

    - **late** (over ``delay_target_s``, with at least ``min_in_flight`` calls of our own in
      progress): the limit falls to ``min(limit, active) x target / lateness`` -- a little late, a
      little lower; twice the target, half -- but by a factor no lower than ``max_drop`` (a half) in
      one window, and never below the **floor**: the calls the gateway completes in one target period (its
      smoothed completion rate x the target; Little's law: that many in progress wait about the
      target). Work the limit does not govern (shedding a flood, accepting connections) can keep
      the loop late whatever the limit; lowering it further would only shed requests the core could
      have served in time.
    - **on time**, with the limit in use (at least half of it in progress): it grows by
      sqrt(limit), probing for room as a congestion window does;
    - **on time and unused**: it grows by ``growth`` back toward ``ceiling`` (the overload is over).

    :attr:`completed` is counted by the admission (one per answered model call).
    """

    max_drop = 0.5  # the most the limit falls in one window (to half)
    rate_smoothing = 0.25  # weight of the last window in the completion rate
    _counted = 0  # :attr:`completed` at the last window
    _at: float | None = None  # when the last window closed

    def lateness(self) -> float:
        """Seconds late now: the loop's own smoothed lag, or the last window's queue delay if larger."""
        return max(self.lag.own_lag_s, self.queue_delay_s)

    def tick(self, now: float, active: int) -> None:
        """Move the limit once per window (``active``: model calls in progress)."""
        if not self._window_over(now):
            return
        done, self._counted = self.completed - self._counted, self.completed
        if self._at is not None and now > self._at:
            self.rate += self.rate_smoothing * (done / (now - self._at) - self.rate)
        self._at = now
        target = self.delay_target_s
        self.floor = max(self.min_in_flight, math.ceil(self.rate * target))
        late = self.lateness()
        if late > target:
            if active >= self.min_in_flight:  # lateness with this many of our own in progress: ours
                gradient = max(self.max_drop, target / late)
                self.limit = max(self.floor, min(self.limit, int(min(self.limit, active) * gradient)))
        elif 2 * active >= self.limit:  # on time and the limit is what holds admission: probe upward
            self.limit = min(self.ceiling, self.limit + max(1, int(math.sqrt(self.limit))))
        elif self.limit < self.ceiling:  # on time and unused: back toward the ceiling
            self.limit = min(self.ceiling, max(self.limit + 1, int(self.limit * self.growth)))
        metrics.IN_FLIGHT_LIMIT.set(self.limit)
