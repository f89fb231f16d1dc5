"""``--since``/``--until`` values: ISO dates and datetimes (UTC unless zoned) and durations ago."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokenomy.reports.timeparse import parse_time

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("90s", 90), ("1.5h", 5400), (" 7D ", 604800)],
)
def test_durations_count_back_from_now(text: str, seconds_ago: float) -> None:
    assert parse_time(text, now=NOW) == NOW - seconds_ago


def test_a_date_is_midnight_utc_and_the_next_midnight_at_end_of_day() -> None:
    assert parse_time("2025-03-01") == datetime(2025, 3, 1, tzinfo=UTC).timestamp()
    assert parse_time("2025-03-01", end_of_day=True) == datetime(2025, 3, 2, tzinfo=UTC).timestamp()
    assert parse_time("2024-12-31", end_of_day=True) == datetime(2025, 1, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T10:30:00", datetime(2025, 3, 1, 10, 30, tzinfo=UTC)),
        ("2025-03-01 10:30", datetime(2025, 3, 1, 10, 30, tzinfo=UTC)),
        ("2025-03-01T10:30:00Z", datetime(2025, 3, 1, 10, 30, tzinfo=UTC)),
        ("2025-03-01T12:30:00+02:00", datetime(2025, 3, 1, 10, 30, tzinfo=UTC)),
        ("2025-03-01T05:30:00-05:00", datetime(2025, 3, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_datetimes_are_utc_unless_they_carry_a_zone(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected.timestamp()
    assert parse_time(text, end_of_day=True) == expected.timestamp()  # end_of_day only widens a bare date


@pytest.mark.parametrize("text", ["", "soon", "7", "d7", "7 days", "2025-02-29", "2025-1-1x", "12:00", "-3h"])
def test_anything_else_is_rejected_with_the_value_in_the_message(text: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        parse_time(text, now=NOW)
