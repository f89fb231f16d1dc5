"""The live-precision estimator and error budget against known truth, in a simulation.

Lookups draw a verifier decision value; a hit (decision ≥ base threshold + the task's offset) is
false with a known probability that falls with the decision value. A share of hits is audited
(the truth is revealed to the estimator). The estimate's interval must cover the true false-hit
rate at the threshold in force, and the budget must move the threshold until the true rate is
within it — tightening when the start is too loose, loosening when it is needlessly strict.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from tokenomy.cache.semantic.live import LivePrecision, read_audits
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


def test_a_task_no_threshold_can_fix_is_suspended_then_resumed_by_shadow_audits() -> None:
    """Near misses the matcher cannot tell apart: 10 % false at every threshold. Tightening cannot
    help, so the task is suspended at the strictest offset; clean shadow audits resume it."""
    from tokenomy.cache.semantic.live import MAX_TIGHTEN
    from tokenomy.telemetry.metrics import REGISTRY

    rng = random.Random(3)
    live = LivePrecision(0.01)
    for _ in range(2_000):
        if live.suspended("medical"):
            break
        live.record("medical", rng.random() < 0.10)
    stats = live.tasks["medical"]
    assert live.suspended("medical") and stats.offset == MAX_TIGHTEN and stats.audits == 0
    assert REGISTRY.get_sample_value("tokenomy_semantic_suspended", {"task": "medical"}) == 1.0
    live.record("medical", True)  # more bad evidence while suspended changes nothing
    assert live.suspended("medical") and stats.offset == MAX_TIGHTEN
    clean = 0
    while live.suspended("medical") and clean < 2_000:  # the comparisons now agree (the traffic changed)
        live.record("medical", False)
        clean += 1
    assert needed_for(0.01) < clean <= 16 + min(n for n in range(1, 2_000) if upper_bound(1, n + 1) <= 0.01)
    assert not live.suspended("medical") and stats.offset == MAX_TIGHTEN
    assert REGISTRY.get_sample_value("tokenomy_semantic_suspended", {"task": "medical"}) == 0.0
    assert not live.suspended("other task")


def test_an_audit_file_from_before_suspension_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "semantic-audits.json"
    row = {"audits": 3, "false_hits": 1, "total_audits": 3, "total_false_hits": 1, "offset": 0.5}
    path.write_text(json.dumps({"budget": 0.01, "tasks": {"faq": row}}))
    read = read_audits(path)
    assert read is not None and read[1]["faq"].offset == 0.5 and not read[1]["faq"].suspended


def test_offsets_and_suspensions_survive_a_restart_but_not_a_new_budget(tmp_path: Path) -> None:
    path = tmp_path / "semantic-audits.json"
    live = LivePrecision(0.01, path=path)
    for _ in range(200):
        live.record("medical", True)
        live.record("medical", False)
    live.save()
    assert live.suspended("medical")
    again = LivePrecision(0.01, path=path)
    assert again.suspended("medical") and again.offset("medical") == live.offset("medical")
    assert again.tasks["medical"].total_audits == 400
    other = LivePrecision(0.05, path=path)  # another budget: the old offsets mean nothing
    assert not other.suspended("medical") and other.tasks == {}


def test_a_malformed_audit_file_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "semantic-audits.json"
    for doc in ("{not json", '{"budget": 0.01, "tasks": {"faq": [1, 2]}}', '{"budget": 0.01, "tasks": []}', "[]"):
        path.write_text(doc)
        assert read_audits(path) is None
        assert LivePrecision(0.01, path=path).tasks == {}
