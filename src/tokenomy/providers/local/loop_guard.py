"""Stopping degenerate loops: a small model at temperature 0 can repeat one phrase until ``max_tokens``.

The repetition penalty makes loops rarer; this guard ends the ones that still happen. It looks at
the generated tokens only (a prompt may repeat itself on purpose) and fires when their tail is one
short pattern repeated back to back, covering at least ``min_span`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_PERIOD = 16  # tokens in the repeated pattern, at most
MIN_REPEATS = 4
MIN_SPAN = 32  # tokens the repetition must cover before the guard fires
CHECK_EVERY = 8  # tokens between checks (a check costs microseconds; a token, milliseconds)


def repeating(tokens: Sequence[int], max_period: int = MAX_PERIOD, min_span: int = MIN_SPAN) -> bool:
    """True when the tail of ``tokens`` is a pattern of at most ``max_period`` tokens repeated."""
    n = len(tokens)
    for period in range(1, max_period + 1):
        span = max(period * MIN_REPEATS, min_span)
        if n < span:
            return False
        start = n - span
        if all(tokens[i] == tokens[i - period] for i in range(start + period, n)):
            return True
    return False
