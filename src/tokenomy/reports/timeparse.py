"""Parsing ``--since``/``--until``: ISO dates and datetimes (UTC unless zoned) or durations ago (``7d``)."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")

HELP = "an ISO date or datetime (UTC unless it has a zone) or a duration ago: 30m, 24h, 7d, 2w"


def parse_time(text: str, *, now: float | None = None, end_of_day: bool = False) -> float:
    """Epoch seconds for ``text``; raises ``ValueError`` with a readable reason.

    A duration (``7d``) is that long before ``now``. A date alone is midnight UTC, or the end of
    that day (the next midnight) with ``end_of_day``, so ``--until 2025-01-31`` includes the 31st.
    """
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        return (time.time() if now is None else now) - amount * _UNIT_S[unit]
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text.strip())
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid date ({exc})") from None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return (start + timedelta(days=1) if end_of_day else start).timestamp()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not {HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


if TYPE_CHECKING:
    _ParamType = click.ParamType[float, Any]
else:  # click < 8.3 has no type parameters
    _ParamType = click.ParamType


class WhenType(_ParamType):
    """A click option type for :func:`parse_time` (a bad value is a usage error, exit code 2)."""

    name = "when"

    def __init__(self, *, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Parse the option's text into epoch seconds."""
        if isinstance(value, float):
            return value
        try:
            return parse_time(str(value), end_of_day=self.end_of_day)
        except (ValueError, OverflowError, OSError) as exc:
            self.fail(str(exc), param, ctx)


def format_time(ts: float) -> str:
    """``2025-01-31 12:00 UTC``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def utc_day(day_number: int) -> str:
    """``YYYY-MM-DD`` of the UTC day with that number of days since the epoch."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day_number)).date().isoformat()
