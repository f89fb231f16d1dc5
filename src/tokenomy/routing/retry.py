"""Which failures are worth another attempt, what they say about the deployment, and the backoff."""

from __future__ import annotations

import email.utils
import random
import time
from enum import Enum

from tokenomy.config.routing import RetryConfig
from tokenomy.errors import GatewayError


class Verdict(Enum):
    """What a failed attempt says about its deployment."""

    FAILED = "failed"  # 5xx, timeout, refused, broken stream: counts toward opening the circuit
    COOL = "cool"  # 429 or 503: alive but saturated; rest for Retry-After
    CLIENT = "client"  # the request itself is wrong: the deployment is fine, and no retry helps


def verdict(exc: GatewayError) -> Verdict:
    """Classify a failed attempt's error."""
    status = exc.status
    if status == 429 or status == 503:
        return Verdict.COOL
    if status >= 500 and exc.code != "internal_error":
        return Verdict.FAILED
    return Verdict.CLIENT


def retryable(exc: GatewayError) -> bool:
    """429, 5xx from upstream, timeouts and refused connections; never client errors or gateway bugs."""
    return verdict(exc) is not Verdict.CLIENT


def outcome_label(exc: GatewayError) -> str:
    """A short, bounded label of a failed attempt for metrics and the attempts list."""
    return exc.code or str(exc.status)


def retry_after_s(exc: GatewayError, now: float | None = None) -> float | None:
    """The error's ``Retry-After`` in seconds (delta-seconds or an HTTP date), if it has one."""
    value = exc.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Backoff:
    """Exponential backoff with full jitter: attempt ``n`` waits uniformly in ``[0, min(max, base * 2**(n-1))]``."""

    __slots__ = ("_base", "_max", "_random")

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self._base = config.backoff_base_ms / 1000.0
        self._max = config.backoff_max_ms / 1000.0
        self._random = (rng or random.Random()).random

    def delay(self, retry: int) -> float:
        """Seconds to wait before the ``retry``-th re-attempt of a deployment (1-based)."""
        ceiling = min(self._max, self._base * (2.0 ** min(retry - 1, 30)))
        return ceiling * self._random()
