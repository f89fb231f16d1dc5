"""The cost-quality curve of a router against single models, the oracle and random mixes.

On the evaluated rows (costs are summed over them, accuracy is the mean score):

* ``baselines``: every single model;
* ``oracle``: per row the best score any model got, paid at the cheapest model that got it;
* ``curve``: the router at each threshold of :data:`THRESHOLDS`;
* the random-mix line (:func:`mix_frontier`): the best a router that ignores the prompt can do,
  sending each query to model A with probability q and to model B otherwise; over all pairs
  that is the upper concave hull of the single models' points, from the cheapest model to the
  most accurate one (flat beyond it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.routing.learned.outcomes import Outcomes, OutcomesError
from tokenomy.routing.learned.router import F64, LearnedRouter, Rule, frontier, select

THRESHOLDS: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(101))


@dataclass(frozen=True, slots=True)
class Point:
    """Accuracy (mean score) and total cost in USD of one policy over the evaluated rows."""

    accuracy: float
    cost_usd: float
    threshold: float | None = None

    def as_json(self) -> dict[str, float]:
        out = {"accuracy": self.accuracy, "cost_usd": self.cost_usd}
        return out if self.threshold is None else {"threshold": self.threshold, **out}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything ``tokenomy router evaluate`` prints."""

    rows: int
    baselines: dict[str, Point]
    oracle: Point
    curve: list[Point]
    default_threshold: float

    def as_json(self) -> dict[str, Any]:
        """The documented JSON: ``baselines``, ``oracle`` and ``curve``."""
        return {
            "baselines": {m: p.as_json() for m, p in self.baselines.items()},
            "oracle": self.oracle.as_json(),
            "curve": [p.as_json() for p in self.curve],
        }

    def at(self, threshold: float) -> Point:
        """The curve point nearest ``threshold``."""
        return min(self.curve, key=lambda p: abs((p.threshold or 0.0) - threshold))


def baselines(outcomes: Outcomes) -> dict[str, Point]:
    """Each model alone."""
    return {
        m: Point(float(outcomes.scores[:, i].mean()), float(outcomes.costs[:, i].sum()))
        for i, m in enumerate(outcomes.models)
    }


def oracle(outcomes: Outcomes) -> Point:
    """The best score of each row at the cheapest model reaching it."""
    best = outcomes.scores.max(axis=1, keepdims=True)
    cost = np.where(outcomes.scores >= best, outcomes.costs, np.inf).min(axis=1)
    return Point(float(best.mean()), float(cost.sum()))


def curve_points(
    success: F64,
    estimated_cost: F64,
    outcomes: Outcomes,
    rule: Rule,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[Point]:
    """The router's accuracy and real cost at each threshold, given its predictions for the rows."""
    rows = np.arange(len(outcomes))
    eligible = frontier(success, estimated_cost)
    points = []
    for t in thresholds:
        pick = select(success, estimated_cost, t, rule, eligible)
        points.append(
            Point(float(outcomes.scores[rows, pick].mean()), float(outcomes.costs[rows, pick].sum()), float(t))
        )
    return points


def evaluate(router: LearnedRouter, outcomes: Outcomes, embeddings: npt.NDArray[np.float32]) -> Evaluation:
    """Score ``router`` on ``outcomes`` (restricted to the router's models) given the prompts' embeddings."""
    missing = [m for m in router.models if m not in outcomes.models]
    if missing:
        raise OutcomesError(f"the router routes to {missing}, which the outcomes file has no columns for")
    rows = outcomes.restrict(router.models)
    success = router.predict(embeddings, rows.prompts)
    cost = router.estimate_cost(rows.prompts)
    return Evaluation(
        rows=len(rows),
        baselines=baselines(rows),
        oracle=oracle(rows),
        curve=curve_points(success, cost, rows, router.rule),
        default_threshold=router.threshold,
    )


def mix_frontier(points: dict[str, Point]) -> list[tuple[float, float]]:
    """Vertices ``(cost, accuracy)`` of the random-mix line: the upper hull from the cheapest to the most accurate."""
    pts = sorted((p.cost_usd, -p.accuracy) for p in points.values())
    top = max(p.accuracy for p in points.values())
    pts = [(c, -a) for c, a in pts]
    hull: list[tuple[float, float]] = []
    for c, a in pts:
        if hull and a <= hull[-1][1]:
            continue  # dominated: costs more, not more accurate
        while len(hull) >= 2 and _turn(hull[-2], hull[-1], (c, a)) >= 0:
            hull.pop()
        hull.append((c, a))
        if a >= top:
            break
    return hull


def mix_accuracy(frontier: list[tuple[float, float]], cost: float) -> float:
    """Accuracy of the best random mix costing ``cost`` (the cheapest model's below it, the best's above)."""
    costs = [c for c, _ in frontier]
    accs = [a for _, a in frontier]
    return float(np.interp(cost, costs, accs))


def _turn(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    """Cross product sign: > 0 for a left (counter-clockwise) turn a→b→c."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
