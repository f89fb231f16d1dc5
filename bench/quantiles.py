"""How well a handful of timings pins down a percentile: distribution-free intervals from order statistics.

The number of measurements below the true ``q`` quantile is Binomial(n, q), so the k-th smallest
measurements bracket it with a known probability whatever the latency distribution. With 346
lookups the 99th percentile rests on the 4 slowest: its interval runs from about the 98th
percentile to the slowest lookup, which is why p99 moves from run to run.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import binom


def quantile_interval(values: Sequence[float], q: float, level: float = 0.95) -> tuple[float, float]:
    """``(low, high)``: the order statistics that cover the true ``q`` quantile (0-1) with probability
    at least ``level`` (the slowest value when the upper rank would pass the end; NaNs when empty)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2
    low_rank = max(1, int(binom.ppf(tail, n, q)))  # 1-based ranks
    high_rank = min(n, int(binom.ppf(1.0 - tail, n, q)) + 1)
    return ordered[low_rank - 1], ordered[high_rank - 1]
