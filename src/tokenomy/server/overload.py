"""Overload detection from event-loop lag.

The number of requests in flight says little about load on a gateway: thousands of streams that
wait on upstream tokens cost almost nothing, while a burst of short requests can saturate the
core. What does measure saturation is how late the event loop runs a timer. A monitor task
sleeps a fixed interval and records how late it woke up; while the smoothed lag is over the
limit, new requests are refused at once with 503 and ``Retry-After`` instead of joining a queue
that would add seconds of latency to every request behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from tokenomy.telemetry import metrics


class LoopLagMonitor:
    """Tracks the event loop's lateness; ``overloaded`` is true while it exceeds ``limit_s``."""

    def __init__(self, limit_s: float, interval_s: float = 0.01, smoothing: float = 0.3) -> None:
        self.limit_s = limit_s
        self.interval_s = interval_s
        self.smoothing = smoothing
        self.lag_s = 0.0
        self.overloaded = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sampling (idempotent; needs a running loop)."""
        if self._task is None and self.limit_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        interval = self.interval_s
        while True:
            expected = time.perf_counter() + interval
            await asyncio.sleep(interval)
            self.observe(max(0.0, time.perf_counter() - expected))

    def observe(self, lag_s: float) -> None:
        """Fold one lateness sample into the smoothed lag."""
        self.lag_s += self.smoothing * (lag_s - self.lag_s)
        self.overloaded = self.lag_s > self.limit_s
        metrics.LOOP_LAG.set(self.lag_s)
