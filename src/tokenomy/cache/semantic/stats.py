"""Exact binomial bounds for false-hit rates (no SciPy on the serving path).

:func:`upper_bound` is the one-sided Clopper-Pearson bound: the largest rate ``p`` for which
seeing at most ``k`` false hits in ``n`` checked hits still has probability ≥ ``1 - confidence``.
With ``k = 0`` it is ``1 - (1 - confidence) ** (1 / n)``: 0 false hits in 299 checks bound the
rate below 1 % at 95 % confidence.
"""

from __future__ import annotations

import math


def _cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        log_choose = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        total += math.exp(log_choose + i * log_p + (n - i) * log_q)
    return min(1.0, total)


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound on a rate after ``k`` events in ``n`` trials (1.0 when n = 0)."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    alpha = 1.0 - confidence
    low, high = k / n, 1.0
    for _ in range(40):
        mid = (low + high) / 2
        if _cdf(k, n, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def lower_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower confidence bound on a rate after ``k`` events in ``n`` trials (0.0 when k = 0)."""
    if n <= 0 or k <= 0:
        return 0.0
    alpha = 1.0 - confidence
    low, high = 0.0, k / n
    for _ in range(40):  # the p at which P(X >= k) = alpha; P(X >= k) rises with p
        mid = (low + high) / 2
        if 1.0 - _cdf(k - 1, n, mid) < alpha:
            low = mid
        else:
            high = mid
    return low


def needed_for(rate: float, confidence: float = 0.95) -> int:
    """Checked hits with no false one that bound the false-hit rate below ``rate``."""
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-rate))


def needed_at(rate: float, observed: float, confidence: float = 0.95) -> int | None:
    """Checked hits that bound the false-hit rate below ``rate`` when a share ``observed`` of them
    is false (about: false hits counted as the nearest whole number); ``None`` when ``observed`` is
    not below ``rate``, which no number of checks at that share certifies."""
    if observed >= rate:
        return None
    if observed <= 0.0:
        return needed_for(rate, confidence)

    def enough(n: int) -> bool:
        return upper_bound(round(observed * n), n, confidence) < rate

    high = needed_for(rate, confidence)
    while not enough(high):
        high *= 2
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high
