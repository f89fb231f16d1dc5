"""The percentile intervals the latency benchmarks print."""

from __future__ import annotations

import numpy as np
from bench.quantiles import quantile_interval


def test_interval_brackets_the_sample_quantile_and_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(0)
    small = list(rng.lognormal(2.0, 0.5, 346))
    low, high = quantile_interval(small, 0.99)
    assert low <= float(np.quantile(small, 0.99)) <= high
    assert high == max(small)  # 346 samples: the 99th percentile's interval reaches the slowest one
    big = list(rng.lognormal(2.0, 0.5, 100_000))
    b_low, b_high = quantile_interval(big, 0.99)
    assert b_high < max(big) and (b_high - b_low) < (high - low)


def test_coverage_is_at_least_the_level() -> None:
    """Over many samples of a known distribution the interval covers the true median ≥ 95 % of the time."""
    rng = np.random.default_rng(1)
    true_median = float(np.exp(2.0))  # of lognormal(2, 0.5)
    covered = 0
    for _ in range(400):
        low, high = quantile_interval(list(rng.lognormal(2.0, 0.5, 101)), 0.5)
        covered += low <= true_median <= high
    assert covered / 400 >= 0.93  # 95 % nominal, minus sampling noise of 400 trials


def test_empty() -> None:
    low, high = quantile_interval([], 0.5)
    assert np.isnan(low) and np.isnan(high)
