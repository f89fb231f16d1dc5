"""Precision and recall with exact intervals, and the nested choice of a threshold per fold."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from tokenomy.cache.semantic.calibrate import Pair
from tokenomy.cache.semantic.tuning.report import estimate, nested, table_row


def test_an_estimate_counts_and_bounds() -> None:
    accepted = np.array([True, True, True, False, False])
    labels = np.array([True, True, False, True, False])
    e = estimate(accepted, labels)
    assert (e.accepted, e.false, e.same) == (3, 1, 3)
    assert e.precision == pytest.approx(2 / 3, abs=1e-4) and e.recall == pytest.approx(2 / 3, abs=1e-4)
    assert e.precision_95 is not None and e.precision_95[0] < 2 / 3 < e.precision_95[1]
    none = estimate(np.zeros(5, dtype=bool), labels)
    assert none.precision is None and none.precision_95 is None and none.recall == 0.0
    assert table_row("m", asdict(none)) == f"| m | 0 | 0 | - | 0.000 [0.000, {none.recall_95[1]:.3f}] |"


def test_nested_applies_to_each_fold_a_threshold_chosen_without_it() -> None:
    # Fold 1 has a negative at 3.5 that fold 0 knows nothing of: the threshold chosen without fold 1
    # (1.5) lets it through, as it would on unseen pairs; chosen on all pairs it would be above 3.5.
    scores = np.array([3.0, 4.0, 1.0, 0.5, 3.0, 4.0, 3.5, 0.5])
    labels = [1, 1, 0, 0, 1, 1, 0, 0]
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pairs = [Pair("a", "b", y) for y in labels]
    e = nested(pairs, scores, fold, [float(t) for t in np.arange(0, 5, 0.5)], 0.99)
    assert e.thresholds == (4.0, 1.5)  # without fold 0: above fold 1's negative at 3.5; without fold 1: 1.5
    assert (e.accepted, e.false) == (1 + 3, 1)


def test_groups_get_their_own_counts_and_a_wider_interval_when_they_disagree() -> None:
    # Two writers: one whose accepted pairs are all right, one whose are mostly wrong. Pooled, 80
    # accepted pairs look like a tight binomial; resampling whole writers shows how far a new
    # writer's precision can fall.
    labels = np.array([True] * 40 + [True] * 10 + [False] * 30)
    accepted = np.ones(80, dtype=bool)
    groups = ["w10"] * 40 + ["w2"] * 40
    e = estimate(accepted, labels, (), groups)
    assert e.by_group == (("w2", 40, 30, 10), ("w10", 40, 0, 40))  # "2" before "10"
    assert e.precision_95 is not None and e.precision_95_groups is not None
    assert e.precision_95_groups[0] < e.precision_95[0] and e.precision_95_groups[0] == pytest.approx(0.25)
    assert e.precision_95_groups[1] == 1.0
    alone = estimate(accepted, labels, (), ["w"] * 80)
    assert alone.by_group == (("w", 80, 30, 50),) and alone.precision_95_groups is None  # one group: no spread
    assert estimate(accepted, labels).by_group == () and estimate(accepted, labels).precision_95_groups is None
