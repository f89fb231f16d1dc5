"""The circuit breaker (closed, open, half-open) and the 429 cool-down honouring Retry-After."""

from __future__ import annotations

import email.utils
import math

from tests.routing.route_helpers import upstream_error

from tokenomy.config.routing import HealthConfig
from tokenomy.routing.health import CircuitState, Degraded, Health
from tokenomy.routing.retry import retry_after_s

T0 = 100.0


def make(**cfg: float) -> tuple[Health, Degraded, list[CircuitState]]:
    degraded, states = Degraded(), list[CircuitState]()
    health = Health(HealthConfig(**cfg), degraded, states.append)  # type: ignore[arg-type]
    return health, degraded, states


def test_consecutive_failures_open_the_circuit_and_success_resets_the_count() -> None:
    health, degraded, states = make(failures_to_open=3, cooldown_s=10)
    health.failure(T0)
    health.failure(T0)
    health.success()
    health.failure(T0)
    health.failure(T0)
    assert health.state == CircuitState.CLOSED and health.usable(T0) and degraded.count == 0
    health.failure(T0)
    assert health.state == CircuitState.OPEN and not health.usable(T0 + 9.9)
    assert degraded.count == 1 and states == [CircuitState.CLOSED, CircuitState.OPEN]
    assert math.isclose(health.ready_in(T0 + 4), 6)


def test_half_open_lets_one_probe_through_which_closes_or_reopens() -> None:
    health, degraded, _ = make(failures_to_open=1, cooldown_s=10)
    health.failure(T0)
    assert health.usable(T0 + 10)
    health.begin(T0 + 10)
    assert health.state == CircuitState.HALF_OPEN and not health.usable(T0 + 10)
    assert health.ready_in(T0 + 10) == math.inf
    health.failure(T0 + 11)  # the probe failed: open again for a full cool-down
    assert health.state == CircuitState.OPEN and not health.usable(T0 + 20) and health.usable(T0 + 21)
    health.begin(T0 + 21)
    health.release()  # the probe's client left: another request may probe
    assert health.usable(T0 + 21)
    health.begin(T0 + 21)
    health.success()
    assert health.state == CircuitState.CLOSED and health.failures == 0 and degraded.count == 0


def test_rate_limit_cools_for_retry_after_without_counting_a_failure() -> None:
    health, degraded, _ = make(failures_to_open=1, max_retry_after_s=30)
    health.rate_limited(T0, 7.0)
    assert health.state == CircuitState.CLOSED and health.failures == 0
    assert not health.usable(T0 + 6.9) and degraded.count == 1
    assert health.usable(T0 + 7.0) and degraded.count == 0
    health.rate_limited(T0, 3600.0)  # capped
    assert not health.usable(T0 + 29) and health.usable(T0 + 30)
    health.rate_limited(T0 + 30, None)  # no Retry-After: one second
    assert math.isclose(health.ready_in(T0 + 30), 1.0)


def test_a_probe_answered_with_429_closes_the_circuit_but_cools() -> None:
    health, _, _ = make(failures_to_open=1, cooldown_s=5)
    health.failure(T0)
    health.begin(T0 + 5)
    health.rate_limited(T0 + 5, 2.0)
    assert health.state == CircuitState.CLOSED and not health.usable(T0 + 6) and health.usable(T0 + 7)


def test_retry_after_is_read_as_seconds_or_http_date() -> None:
    assert retry_after_s(upstream_error(429, retry_after="7")) == 7.0
    assert retry_after_s(upstream_error(429)) is None
    assert retry_after_s(upstream_error(429, retry_after="soon")) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_s(upstream_error(429, retry_after=date), now=1_000_000) == 30.0
