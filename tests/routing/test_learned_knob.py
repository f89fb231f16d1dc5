"""The knob: hull of operating points, mixing between neighbours, and the CV default with a margin."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tokenomy.routing.learned.knob import Knob, Vertex, default_position, hull_area, mix_draws, picks_at, upper_hull


def test_upper_hull_keeps_only_points_no_mix_beats() -> None:
    points = [(1.0, 0.5), (2.0, 0.52), (3.0, 0.8), (5.0, 0.82), (6.0, 0.9), (8.0, 0.85)]
    assert upper_hull(points) == [0, 2, 4]
    assert hull_area(points, 1.0, 6.0) > hull_area([(1.0, 0.5), (6.0, 0.9)], 1.0, 6.0)
    assert hull_area([(1.0, 0.5), (6.0, 0.9)], 1.0, 6.0) == pytest.approx(0.7, abs=1e-3)


KNOB = Knob((Vertex("model", 0, 1.0, 0.5), Vertex("threshold", 0.9, 3.0, 0.8), Vertex("model", 1, 5.0, 0.9)), 0.5)


def test_locate_is_linear_in_cost_between_vertices() -> None:
    assert KNOB.locate(0.0) == (0, 1, 0.0)
    assert KNOB.locate(0.25) == (0, 1, pytest.approx(0.5))
    assert KNOB.locate(0.5) == (0, 1, pytest.approx(1.0))
    assert KNOB.locate(0.75) == (1, 2, pytest.approx(0.5))
    assert KNOB.locate(1.0) == (1, 2, pytest.approx(1.0))
    assert Knob((Vertex("model", 0, 1.0, 0.5),), 0.0).locate(0.7) == (0, 0, 0.0)


def test_mixing_sends_the_share_the_position_calls_for_and_is_stable_per_prompt() -> None:
    texts = [f"prompt {i}" for i in range(20_000)]
    draws = mix_draws(texts)
    assert np.array_equal(draws, mix_draws(texts)) and (draws >= 0).all() and (draws < 1).all()
    picks = [np.zeros(len(texts), dtype=np.intp), np.ones(len(texts), dtype=np.intp), np.full(len(texts), 2)]
    share = (picks_at(KNOB, 0.25, picks, draws) == 1).mean()
    assert share == pytest.approx(0.5, abs=0.02)
    at = [picks_at(KNOB, p, picks, draws) for p in np.linspace(0, 1, 41)]
    assert all((b >= a).all() for a, b in itertools.pairwise(at))  # a prompt only moves up as the knob rises


def test_default_position_reaches_the_target_with_a_margin() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    scores = np.stack([rng.uniform(size=n) < 0.5, rng.uniform(size=n) < 0.9], axis=1).astype(float)
    costs = np.tile([1.0, 10.0], (n, 1))
    knob = Knob((Vertex("model", 0, 1.0, 0.5), Vertex("model", 1, 10.0, 0.9)), 0.0)
    picks = [np.zeros(n, dtype=np.intp), np.ones(n, dtype=np.intp)]
    draws = mix_draws([f"p{i}" for i in range(n)])
    position, why = default_position(knob, picks, draws, scores, costs, 0.9, None)
    reached = scores[np.arange(n), picks_at(knob, position, picks, draws)].mean()
    assert reached >= 0.9 * scores[:, 1].mean() + 0.005  # above the target by the margin, not just at it
    assert "cheapest position reaching 90%" in why
    position, why = default_position(knob, picks, draws, scores, costs, None, 0.4)
    spent = costs[np.arange(n), picks_at(knob, position, picks, draws)].mean()
    assert spent <= 0.4 * 10.0 and spent > 0.3 * 10.0 and "within 40%" in why
    position, why = default_position(knob, picks, draws, scores, costs, 1.0, None)
    assert position == 1.0  # only the best model itself reaches all of its accuracy


def test_threshold_points_must_beat_the_random_mix_to_join_the_knob() -> None:
    from tokenomy.routing.learned.train import beats_mix

    rng = np.random.default_rng(2)
    n = 1000
    scores = np.stack([rng.uniform(size=n) < 0.5, rng.uniform(size=n) < 0.9], axis=1).astype(float)
    costs = np.tile([1.0, 3.0], (n, 1))
    half = np.arange(n) % 2  # half the rows to each model: exactly the random mix at cost 2
    mixed = scores[np.arange(n), half]
    assert not beats_mix(mixed, costs[np.arange(n), half], scores, costs)
    oracle = scores.max(axis=1)  # the better model per row, at the same cost
    assert beats_mix(oracle, costs[np.arange(n), half], scores, costs)
    assert not beats_mix(scores[:, 0], np.full(n, 2.0), scores, costs)  # paying more for the cheap model's answers


def test_a_threshold_point_must_beat_the_random_mix_in_every_fold() -> None:
    """A gain that holds pooled but vanishes in one fold (it rests on a few prompts) keeps the point off the knob."""
    from tokenomy.routing.learned.train import beats_mix

    rng = np.random.default_rng(3)
    n = 2000
    scores = np.stack([rng.uniform(size=n) < 0.5, rng.uniform(size=n) < 0.9], axis=1).astype(float)
    costs = np.tile([1.0, 3.0], (n, 1))
    half = np.arange(n) % 2
    rows = np.arange(n)
    folds = rows % 5
    better = scores.max(axis=1)  # the better model per row: a gain in every fold
    assert beats_mix(better, costs[rows, half], scores, costs, folds=folds)
    uneven = np.where(folds == 4, scores[:, 0], better)  # fold 4: the cheap model's answers at the mix's price
    assert beats_mix(uneven, costs[rows, half], scores, costs)  # pooled, the gain is still clear
    assert not beats_mix(uneven, costs[rows, half], scores, costs, folds=folds)
