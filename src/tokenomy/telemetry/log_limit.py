"""Warnings that cannot flood the log: at most one line per kind of event per interval.

During an outage every request fails the same way; the first failure is logged at once, later
ones of the same key are counted and the count is reported with the next line let through.
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """Log through ``logger``, at most once per ``key`` every ``interval_s`` seconds."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval_s`` ago; True when logged."""
        if not self.logger.isEnabledFor(level):
            return False
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
            if len(self._last) > 10_000:  # keys are bounded in practice (deployments x outcomes); stay safe
                self._last = {key: now}
        if suppressed:
            msg += f" ({suppressed} more like this in the last {self.interval_s:.0f} s not logged)"
        self.logger.log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """A rate-limited WARNING."""
        return self.log(logging.WARNING, key, msg, *args)
