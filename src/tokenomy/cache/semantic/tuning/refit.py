"""The verifier refitted on a team's own pairs, its hard gate turned into one more feature.

The shipped verifier (:mod:`tokenomy.cache.semantic.verifier`) refuses outright a pair whose
numbers, negation or word roles differ (:func:`~tokenomy.cache.semantic.features.gate`) and weighs
the rest with coefficients fitted on LangCache and STS-B. On another domain both can be wrong: on
medical question pairs the gate refused 41 % of the pairs that ask the same thing, and a tuned
cross-encoder's better logits barely moved the decisions (docs/semantic-cache-measurements.md, "Tuning"). Here
the logistic regression is fitted again on the user's pairs, with the gate's verdict as a feature
it may weigh (``"gates": "feature"`` in the written ``verifier.json``).

:func:`cross_fitted` gives what that choice is worth on unseen pairs: for each fold, the regression
and its threshold are fitted on the other folds only, then applied to the fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.calibrate import Pair
from tokenomy.cache.semantic.features import FEATURES, features, gate
from tokenomy.cache.semantic.tuning.report import Estimate, estimate, labels_of

GATE_FEATURE = "gate"
"""The extra feature: 1.0 when :func:`~tokenomy.cache.semantic.features.gate` passes, else 0.0."""
REGULARISATION_C = 0.5
"""The inverse L2 strength, as the shipped verifier was fitted (``bench/cache/fit_verifier.py``)."""
GRID = cal.thresholds(-4.0, 12.0, 0.1)
"""Thresholds tried for a refitted verifier's decision values."""


@dataclass(frozen=True, slots=True)
class PairRows:
    """Each pair's verifier features as a lookup reads it (``sentence2`` asked after ``sentence1`` was
    stored), the cross-encoder column 0, and its gate verdict: the lexical part, computed once for
    all the logits a tuning run reads the pairs under."""

    rows: npt.NDArray[np.float64]
    gates: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, pairs: Sequence[Pair], cosines: npt.NDArray[Any]) -> PairRows:
        """The rows of ``pairs`` with their MiniLM ``cosines``."""
        rows = [features(p.b, p.a, float(c), 0.0) for p, c in zip(pairs, cosines, strict=True)]
        return cls(
            np.stack(rows) if rows else np.zeros((0, len(FEATURES))),
            np.array([gate(p.b, p.a) for p in pairs], dtype=bool),
        )


def feature_matrix(
    pairs: Sequence[Pair], cosines: npt.NDArray[Any], logit: npt.NDArray[np.float64], with_gate: bool = True,
    rows: PairRows | None = None,
) -> npt.NDArray[np.float64]:  # fmt: skip
    """One row of the verifier's features per pair, read as a lookup reads it (``sentence2`` asked
    after ``sentence1`` was stored), plus the gate's verdict when ``with_gate``; ``rows``: the pairs'
    :class:`PairRows`, when already computed."""
    rows = rows or PairRows.of(pairs, cosines)
    x = rows.rows.copy()
    x[:, 1] = logit
    return np.column_stack([x, rows.gates.astype(np.float64)]) if with_gate else x


@dataclass(frozen=True, slots=True)
class Fitted:
    """A standardised logistic regression: ``((x - mean) / scale) @ coef + intercept``."""

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]
    intercept: float

    def decision(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The logit of "same question" for each row of ``x``."""
        return np.asarray(((x - self.mean) / self.scale) @ self.coef + self.intercept, dtype=np.float64)

    def document(self) -> dict[str, Any]:
        """The fields of ``verifier.json`` this fit sets (features with the gate, ``gates: feature``)."""
        return {
            "kind": "logistic", "regularisation_c": REGULARISATION_C, "gates": "feature",
            "features": [*FEATURES, GATE_FEATURE], "mean": self.mean.tolist(), "scale": self.scale.tolist(),
            "coef": self.coef.tolist(), "intercept": self.intercept,
        }  # fmt: skip


def fit(x: npt.NDArray[np.float64], y: npt.NDArray[np.bool_]) -> Fitted:
    """Fit the regression on rows ``x`` with labels ``y`` (a constant column gets scale 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=REGULARISATION_C, max_iter=1000).fit(scaler.transform(x), y)
    return Fitted(
        np.asarray(scaler.mean_, dtype=np.float64), np.asarray(scaler.scale_, dtype=np.float64),
        np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0]),
    )  # fmt: skip


def cross_fitted(
    pairs: Sequence[Pair], x: npt.NDArray[np.float64], fold: npt.NDArray[np.int64], usable: npt.NDArray[np.bool_],
    target: float, grid: Sequence[float] = GRID,
) -> tuple[npt.NDArray[np.float64], Estimate]:  # fmt: skip
    """Out-of-fold decision values of a regression fitted without each fold (-inf where not ``usable``:
    below the cosine floor, another language), and the nested estimate: each fold accepted at the
    threshold ``tokenomy cache calibrate``'s rule chooses on the other folds' decisions under the
    regression fitted on them."""
    y = labels_of(pairs)
    out = np.full(len(pairs), -np.inf)
    accepted = np.zeros(len(pairs), dtype=bool)
    chosen: list[float | None] = []
    for k in sorted(set(fold.tolist())):
        train, held = usable & (fold != k), usable & (fold == k)
        if len(set(y[train].tolist())) < 2:  # one label only: nothing to fit, nothing accepted
            chosen.append(None)
            continue
        model = fit(x[train], y[train])
        inside = np.full(len(pairs), -np.inf)
        inside[train] = model.decision(x[train])
        rest = np.flatnonzero(fold != k).tolist()
        point = cal.recommend(cal.curve([pairs[i] for i in rest], inside[rest], False, grid), target)
        chosen.append(None if point is None else point.threshold)
        if held.any():
            out[held] = model.decision(x[held])
            if point is not None:
                accepted[held] = out[held] >= point.threshold
    return out, estimate(accepted, y, chosen, [p.group for p in pairs])
