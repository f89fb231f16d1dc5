"""The guard every measurement of the local benchmark runs under, on a machine others may share."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Quiet:
    """Guards measurements against other programs on a shared machine.

    During each measurement it compares the CPU time the whole machine was busy (``/proc/stat``)
    with the CPU time of this benchmark's own processes (this one and the gateways it started).
    A run during which other programs used more than ``limit`` of a core is repeated (up to
    ``attempts`` times; the least disturbed attempt is kept and counted as disturbed).
    """

    def __init__(self, limit: float = 0.2, attempts: int = 4) -> None:
        self.limit = limit
        self.attempts = attempts
        self.pids = {os.getpid()}
        self.repeated = 0
        self.disturbed = 0
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self) -> tuple[float, int, int] | None:
        try:
            with open("/proc/stat") as f:
                values = [int(v) for v in f.readline().split()[1:9]]
        except OSError:
            return None
        busy = sum(values) - values[3] - values[4]
        ours = 0
        for pid in list(self.pids):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ours += int(fields[11]) + int(fields[12])
            except OSError:
                continue
        return time.perf_counter(), busy, ours

    def _foreign(self, start: tuple[float, int, int] | None) -> float:
        end = self._sample()
        if start is None or end is None or end[0] <= start[0]:
            return 0.0
        return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / self.hz / (end[0] - start[0]))

    def run(self, measure: Callable[[], T]) -> T:
        """``measure()`` under the guard (a synchronous measurement)."""

        async def once() -> T:
            return measure()

        return asyncio.run(self.arun(once))

    async def arun(self, measure: Callable[[], Awaitable[T]]) -> T:
        """``await measure()`` until other programs left it alone (or the attempts ran out)."""
        best: tuple[float, T] | None = None
        for attempt in range(self.attempts):
            start = self._sample()
            value = await measure()
            foreign = self._foreign(start)
            if best is None or foreign < best[0]:
                best = (foreign, value)
            if foreign <= self.limit:
                return value
            self.repeated += attempt < self.attempts - 1
        self.disturbed += 1
        assert best is not None
        return best[1]


QUIET = Quiet()
"""The one guard of a benchmark run (gateways it starts add their process ids)."""
