"""The verifier refitted on a team's pairs: the gate as a feature, fitted and thresholded without each fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tokenomy.cache.semantic.calibrate import Pair
from tokenomy.cache.semantic.features import FEATURES, features, gate
from tokenomy.cache.semantic.tuning.refit import GATE_FEATURE, cross_fitted, feature_matrix, fit
from tokenomy.cache.semantic.verifier import Verifier, default_path

DIFFERENT_NUMBERS = ("convert 6 EUR to USD", "convert 5 EUR to USD")  # (query, stored): the gate refuses it


def test_the_matrix_is_the_lookup_features_plus_the_gate_verdict() -> None:
    pairs = [
        Pair(DIFFERENT_NUMBERS[1], DIFFERENT_NUMBERS[0], 0),
        Pair("reset my password", "how to reset a password", 1),
    ]
    x = feature_matrix(pairs, np.array([0.9, 0.8]), np.array([1.5, -2.0]))
    assert x.shape == (2, len(FEATURES) + 1)
    for row, pair, cosine, logit in zip(x, pairs, (0.9, 0.8), (1.5, -2.0), strict=True):
        assert row[:-1].tolist() == features(pair.b, pair.a, cosine, logit).tolist()  # query = sentence2
    assert x[:, -1].tolist() == [float(gate(p.b, p.a)) for p in pairs] == [0.0, 1.0]
    assert feature_matrix(pairs, np.array([0.9, 0.8]), np.array([1.5, -2.0]), with_gate=False).shape[1] == len(FEATURES)


def synthetic(n: int = 400) -> tuple[list[Pair], np.ndarray, np.ndarray]:
    """Pairs whose label is the sign of the first column, a margin around 0 (noise in the second); four folds."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2))
    x[:, 0] += np.sign(x[:, 0])
    labels = x[:, 0] > 0
    pairs = [Pair(f"q{i}", f"s{i}", int(y)) for i, y in enumerate(labels)]
    return pairs, x, np.arange(n) % 4


def test_cross_fitted_decisions_come_from_fits_without_the_fold_and_unusable_pairs_stay_out() -> None:
    pairs, x, fold = synthetic()
    usable = np.ones(len(pairs), dtype=bool)
    usable[:10] = False
    decided, nested = cross_fitted(pairs, x, fold, usable, target=0.99)
    assert np.isneginf(decided[:10]).all() and np.isfinite(decided[10:]).all()
    labels = np.array([p.label for p in pairs], dtype=bool)
    assert decided[10:][labels[10:]].min() > decided[10:][~labels[10:]].max(), "separable: every same pair above"
    assert len(nested.thresholds) == 4 and all(t is not None for t in nested.thresholds)
    assert nested.false == 0 and nested.accepted > 0.8 * labels[10:].sum()
    # fold 0's decisions are those of a fit on folds 1-3 alone
    outside = usable & (fold != 0)
    held = usable & (fold == 0)
    assert np.allclose(decided[held], fit(x[outside], labels[outside]).decision(x[held]))


def test_a_fold_whose_training_pairs_have_one_label_accepts_nothing() -> None:
    pairs, x, fold = synthetic(40)
    usable = (fold == 0) | np.array([p.label == 1 for p in pairs])  # outside fold 0 only "same" pairs
    decided, nested = cross_fitted(pairs, x, fold, usable, target=0.99)
    assert nested.thresholds[0] is None and np.isneginf(decided[fold == 0]).all()


def refitted_file(tmp_path: Path) -> Path:
    """A verifier.json as tune writes it: the gate weighed, here strongly, like any other feature."""
    doc = json.loads(default_path().read_text())
    n = len(FEATURES) + 1
    coef = np.zeros(n)
    coef[1], coef[-1] = 1.0, 2.0  # the cross-encoder logit and the gate
    doc.update(
        gates="feature", features=[*FEATURES, GATE_FEATURE], mean=[0.0] * n, scale=[1.0] * n,
        coef=coef.tolist(), intercept=0.0, threshold=1.0,
    )  # fmt: skip
    path = tmp_path / "verifier.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_refitted_verifier_weighs_the_gate_where_the_shipped_one_refuses(tmp_path: Path) -> None:
    query, stored = DIFFERENT_NUMBERS
    refitted, shipped = Verifier.load(refitted_file(tmp_path)), Verifier.load()
    assert refitted.gates == "feature" and shipped.gates == "hard"
    assert shipped.decision(query, stored, 0.95, 3.0) == float("-inf")
    assert refitted.decision(query, stored, 0.95, 3.0) == pytest.approx(3.0)  # gate 0: the logit alone
    assert refitted.decision("reset my password", "reset the password", 0.95, 3.0) == pytest.approx(5.0)
    assert refitted.decision(query, stored, 0.5, 3.0) == float("-inf")  # the cosine floor still holds


@pytest.mark.parametrize(
    ("change", "message"),
    [({"gates": "soft"}, "gates must be"), ({"features": list(FEATURES)}, "this version computes")],
)
def test_a_verifier_file_that_does_not_fit_is_refused(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = refitted_file(tmp_path)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=message):
        Verifier.load(path)


@pytest.mark.parametrize("refitted", [False, True])
def test_rows_computed_once_give_the_decisions_a_lookup_computes(refitted: bool, tmp_path: Path) -> None:
    from tokenomy.cache.semantic.tuning.refit import PairRows
    from tokenomy.cache.semantic.tuning.tune import decisions

    verifier = Verifier.load(refitted_file(tmp_path) if refitted else None)
    pairs = [
        Pair(DIFFERENT_NUMBERS[1], DIFFERENT_NUMBERS[0], 0),
        Pair("reset my password", "how to reset a password", 1),
        Pair("price of a flight to Rome", "flight to Rome price", 1),
        Pair("what is a cat", "what is a dog", 0),
    ]
    cosines = np.array([0.95, 0.9, 0.55, 0.8])  # the third below the floor
    forward, backward = np.array([3.0, 2.5, 4.0, -1.0]), np.array([2.0, 3.5, 4.0, 0.5])
    rows = PairRows.of(pairs, cosines)
    logit = (forward + backward) / 2 if verifier.orders == 2 else forward
    expected = [verifier.decision(p.b, p.a, float(c), float(z)) for p, c, z in zip(pairs, cosines, logit, strict=True)]
    same = np.ones(len(pairs), dtype=bool)
    assert decisions(verifier, pairs, cosines, forward, backward, same, rows).tolist() == pytest.approx(expected)
    assert decisions(verifier, pairs, cosines, forward, backward, same).tolist() == pytest.approx(expected)
    assert np.isneginf(expected[2]) and np.isfinite(expected[1]) and np.isfinite(expected[3])
    assert np.isneginf(expected[0]) != refitted  # the shipped verifier's gate refuses different numbers
    x = feature_matrix(pairs, cosines, logit, rows=rows)
    assert x.tolist() == feature_matrix(pairs, cosines, logit).tolist()
