"""The live-precision estimator and error budget against known truth, in a simulation.

Lookups draw a verifier decision value; a hit (decision ≥ base threshold + the task's offset) is
false with a known probability that falls with the decision value. A share of hits is audited
(the truth is revealed to the estimator). The estimate's interval must cover the true false-hit
rate at the threshold in force, and the budget must move the threshold until the true rate is
within it — tightening when the start is too loose, loosening when it is needlessly strict.
"""

from __future__ import annotations

import math
import random

from tokenomy.cache.semantic.live import LivePrecision
from tokenomy.cache.semantic.stats import lower_bound, needed_for, upper_bound


def p_false(decision: float, centre: float) -> float:
    return 1.0 / (1.0 + math.exp(2.5 * (decision - centre)))


def true_rate(threshold: float, centre: float, samples: list[float]) -> float:
    """The false-hit rate among hits at ``threshold`` (over the same decision distribution)."""
    hits = [p_false(d, centre) for d in samples if d >= threshold]
    return sum(hits) / len(hits)


def simulate(centre: float, budget: float, lookups: int, seed: int) -> tuple[LivePrecision, list[float]]:
    rng = random.Random(seed)
    live = LivePrecision(budget)
    base = 3.0
    samples = [rng.gauss(3.0, 1.5) for _ in range(20_000)]
    for _ in range(lookups):
        d = rng.gauss(3.0, 1.5)
        if d < base + live.offset("faq"):
            continue
        if rng.random() < 0.25:  # audit share
            live.record("faq", rng.random() < p_false(d, centre))
    return live, samples


def test_bounds_are_exact_clopper_pearson() -> None:
    assert abs(upper_bound(0, 100) - (1 - 0.05 ** (1 / 100))) < 1e-9
    assert lower_bound(0, 50) == 0.0 and upper_bound(5, 0) == 1.0
    assert lower_bound(10, 100) < 0.1 < upper_bound(10, 100)
    assert needed_for(0.01) == 299


def test_too_loose_a_threshold_is_tightened_until_within_budget() -> None:
    budget, centre = 0.01, 2.5  # at the base threshold 3.0 the true rate is ~5 %
    live, samples = simulate(centre, budget, 100_000, seed=1)
    start = true_rate(3.0, centre, samples)
    stats = live.tasks["faq"]
    final = true_rate(3.0 + stats.offset, centre, samples)
    assert start > budget and stats.offset > 0
    assert final <= budget * 1.2  # within the budget (the step is coarse)
    _rate, low, high = stats.estimate()
    assert stats.audits and low <= final <= high  # the interval covers the truth at the threshold in force


def test_needlessly_strict_threshold_is_loosened() -> None:
    budget, centre = 0.05, 1.0  # at 3.0 the true rate is ~0.1 %: room to spare
    live, samples = simulate(centre, budget, 100_000, seed=2)
    stats = live.tasks["faq"]
    assert stats.offset < 0 and true_rate(3.0 + stats.offset, centre, samples) <= budget
    _rate, low, high = stats.estimate()
    assert low <= true_rate(3.0 + stats.offset, centre, samples) <= high


def test_coverage_of_the_interval_over_many_runs() -> None:
    """Without adjustments (huge budget) the 95 % one-sided bounds cover the truth ≥ 90 % of runs."""
    covered = 0
    for seed in range(40):
        rng = random.Random(seed)
        live = LivePrecision(0.99)
        for _ in range(300):
            live.record("t", rng.random() < 0.03)
        _rate, low, high = live.tasks["t"].estimate()
        covered += low <= 0.03 <= high
    assert covered >= 36
