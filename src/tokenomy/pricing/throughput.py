"""Measured throughput of a self-hosted deployment: tokens per second of busy wall-clock time.

Overlapping requests share the wall clock (a batching server serves them together), so busy
time is the union of request intervals, not their sum. Both totals decay so the figure follows
recent load.
"""

from __future__ import annotations

import threading

_HALF_LIFE_S = 600.0


class ThroughputMeter:
    """Tokens per busy second over recent requests (exponentially decayed, half-life 10 min)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._busy = 0.0
        self._busy_until = 0.0
        self._last = 0.0

    def observe(self, tokens: int, start: float, end: float) -> None:
        """Count a request that processed ``tokens`` between ``start`` and ``end`` (epoch seconds)."""
        if end <= start:
            return
        with self._lock:
            if self._last:
                decay = 0.5 ** (max(0.0, end - self._last) / _HALF_LIFE_S)
                self._tokens *= decay
                self._busy *= decay
            self._last = max(self._last, end)
            if start >= self._busy_until:
                self._busy += end - start
            elif end > self._busy_until:
                self._busy += end - self._busy_until
            self._busy_until = max(self._busy_until, end)
            self._tokens += tokens

    def tokens_per_s(self) -> float | None:
        """The current estimate, or ``None`` before any request."""
        with self._lock:
            return self._tokens / self._busy if self._busy > 0 else None
