"""The job-wide token bucket: the rate holds however many callers reserve from it."""

from __future__ import annotations

import pytest

from tokenomy.batches.rate_limit import TokenBucket


def test_reservations_are_spaced_at_the_rate_after_the_burst() -> None:
    now = [100.0]
    bucket = TokenBucket(rate_per_s=2.0, burst=2, clock=lambda: now[0])
    waits = [bucket.reserve() for _ in range(6)]  # six callers at the same instant
    assert waits == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    now[0] += 10.0  # idle: the bucket refills, but only up to the burst
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.5]
    assert bucket.count() == 9


def test_a_steady_caller_at_the_rate_never_waits() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_s=4.0, clock=lambda: now[0])
    for _ in range(50):
        assert bucket.reserve() == 0.0
        now[0] += 0.25


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)
