"""Budget periods: UTC days and months, their ids and when they reset."""

from __future__ import annotations

import datetime as dt
from typing import Literal

Period = Literal["day", "month"]
ADJECTIVE: dict[Period, str] = {"day": "daily", "month": "monthly"}


def period_of(period: Period, now: float) -> tuple[str, float]:
    """The id of the period containing ``now`` (``d2025-01-31``, ``m2025-01``) and its end (epoch s)."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return f"d{day:%Y-%m-%d}", (day + dt.timedelta(days=1)).timestamp()
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return f"m{start:%Y-%m}", end.timestamp()


def iso(ts: float) -> str:
    """``2025-02-01T00:00:00Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PeriodClock:
    """The current day and month ids, recomputed only when one ends (cheap on the request path)."""

    def __init__(self) -> None:
        self._cache: dict[Period, tuple[str, float]] = {}

    def current(self, period: Period, now: float) -> tuple[str, float]:
        """``(id, resets_at)`` of the period containing ``now``."""
        found = self._cache.get(period)
        if found is None or now >= found[1]:
            found = self._cache[period] = period_of(period, now)
        return found
