"""Passive health of one deployment: a circuit breaker and a rate-limit cool-down.

Closed: requests flow. ``failures_to_open`` consecutive failures open the circuit for
``cooldown_s``; then one request is let through as a probe (half-open): its success closes the
circuit, its failure opens it again. Separately, an upstream 429 (or 503) cools the deployment
for its ``Retry-After`` without counting as a failure: the upstream is alive, only saturated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import IntEnum

from tokenomy.config.routing import HealthConfig


class CircuitState(IntEnum):
    """The circuit's state; the value is what the ``tokenomy_circuit_state`` gauge shows."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Degraded:
    """How many deployments of a pool are not plainly usable (lets a healthy pool skip the health scan)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


StateHook = Callable[[CircuitState], None]


class Health:
    """Circuit breaker and cool-down of one deployment; times are ``time.monotonic()`` seconds."""

    __slots__ = (
        "_cooldown",
        "_degraded",
        "_hook",
        "_max_retry_after",
        "_threshold",
        "cool_until",
        "failures",
        "open_until",
        "probing",
        "state",
    )

    def __init__(self, config: HealthConfig, degraded: Degraded | None = None, hook: StateHook | None = None) -> None:
        self._threshold = config.failures_to_open
        self._cooldown = config.cooldown_s
        self._max_retry_after = config.max_retry_after_s
        self._degraded = degraded or Degraded()
        self._hook = hook
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.open_until = 0.0
        self.cool_until = 0.0
        self.probing = False

    @property
    def fine(self) -> bool:
        """Closed and not cooling: counted as healthy by the pool."""
        return self.state is CircuitState.CLOSED and not self.cool_until

    def usable(self, now: float) -> bool:
        """May a request be sent here now?"""
        if self.cool_until:
            if now < self.cool_until:
                return False
            self._set_cool(0.0)
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return now >= self.open_until
        return not self.probing

    def ready_in(self, now: float) -> float:
        """Seconds until :meth:`usable` may turn true (0 when it already is)."""
        if self.state is CircuitState.HALF_OPEN and self.probing:
            return math.inf  # a probe is out: no telling when it ends
        wait = self.cool_until - now
        if self.state is CircuitState.OPEN:
            wait = max(wait, self.open_until - now)
        return max(0.0, wait)

    def begin(self, now: float) -> None:
        """An attempt starts here: past an open circuit's cool-down it becomes the half-open probe."""
        if self.state is not CircuitState.CLOSED:
            if self.state is CircuitState.OPEN:
                self._set_state(CircuitState.HALF_OPEN)
            self.probing = True

    def success(self) -> None:
        """The attempt succeeded (or failed for the client's own reasons): close the circuit."""
        if self.failures or self.state is not CircuitState.CLOSED:
            self.failures = 0
            self.probing = False
            self._set_state(CircuitState.CLOSED)

    def failure(self, now: float) -> None:
        """The attempt failed (5xx, timeout, refused, broken stream)."""
        self.failures += 1
        self.probing = False
        if self.state is CircuitState.HALF_OPEN or self.failures >= self._threshold:
            self.open_until = now + self._cooldown
            self._set_state(CircuitState.OPEN)

    def rate_limited(self, now: float, retry_after: float | None) -> None:
        """The upstream said 429/503: rest for its ``Retry-After`` (1 s when it gave none)."""
        self.probing = False
        if self.state is CircuitState.HALF_OPEN:
            self.failures = 0
            self._set_state(CircuitState.CLOSED)  # the probe reached a live upstream
        wait = min(retry_after if retry_after is not None else 1.0, self._max_retry_after)
        self._set_cool(max(self.cool_until, now + wait))

    def release(self) -> None:
        """The attempt ended with no verdict (the client left): free the probe slot."""
        self.probing = False

    def _set_state(self, state: CircuitState) -> None:
        was_fine = self.fine
        self.state = state
        self._changed(was_fine)
        if self._hook is not None:
            self._hook(state)

    def _set_cool(self, until: float) -> None:
        was_fine = self.fine
        self.cool_until = until
        self._changed(was_fine)

    def _changed(self, was_fine: bool) -> None:
        fine = self.fine
        if fine != was_fine:
            self._degraded.count += -1 if fine else 1
