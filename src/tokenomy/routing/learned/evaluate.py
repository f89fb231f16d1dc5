"""The cost-quality curve of a router against single models, the oracle and random mixes.

On the evaluated rows (costs are summed over them, accuracy is the mean score):

* ``baselines``: every single model;
* ``oracle``: per row the best score any model got, paid at the cheapest model that got it;
* ``curve``: the router at each knob position of :data:`POSITIONS`;
* ``tasks``: per task, the router at its default position against the best model;
* the random-mix line (:func:`mix_frontier`): the best a router that ignores the prompt can do,
  sending each query to model A with probability q and to model B otherwise; over all pairs
  that is the upper concave hull of the single models' points, from the cheapest model to the
  most accurate one (flat beyond it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.routing.learned.features import Embed, embed_tails
from tokenomy.routing.learned.knob import mix_draws, picks_at, upper_hull
from tokenomy.routing.learned.outcomes import Outcomes, OutcomesError
from tokenomy.routing.learned.router import LearnedRouter, vertex_picks
from tokenomy.routing.learned.train import prompt_hashes

POSITIONS: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(101))


@dataclass(frozen=True, slots=True)
class Point:
    """Accuracy (mean score) and total cost in USD of one policy over the evaluated rows."""

    accuracy: float
    cost_usd: float
    knob: float | None = None

    def as_json(self) -> dict[str, float]:
        out = {"accuracy": self.accuracy, "cost_usd": self.cost_usd}
        return out if self.knob is None else {"knob": self.knob, **out}


@dataclass(frozen=True, slots=True)
class TaskRow:
    """The router at its default position on one task's rows."""

    task: str
    rows: int
    accuracy: float
    best_accuracy: float
    cost_share: float  # of the best model's cost on these rows
    picks: dict[str, float]  # share of the rows sent to each model

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "rows": self.rows, "accuracy": self.accuracy, "best_model_accuracy": self.best_accuracy,
            "cost_share": self.cost_share, "picks": self.picks,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything ``tokenomy router evaluate`` prints."""

    rows: int
    baselines: dict[str, Point]
    oracle: Point
    curve: list[Point]
    default_knob: float
    tasks: list[TaskRow] = field(default_factory=list)
    seen_in_training: int = 0

    def as_json(self) -> dict[str, Any]:
        """The documented JSON: ``baselines``, ``oracle``, ``curve``, ``default_knob``, ``tasks``."""
        return {
            "rows": self.rows,
            "seen_in_training": self.seen_in_training,
            "baselines": {m: p.as_json() for m, p in self.baselines.items()},
            "oracle": self.oracle.as_json(),
            "curve": [p.as_json() for p in self.curve],
            "default_knob": self.default_knob,
            "tasks": [t.as_json() for t in self.tasks],
        }

    def at(self, knob: float) -> Point:
        """The curve point nearest ``knob``."""
        return min(self.curve, key=lambda p: abs((p.knob or 0.0) - knob))


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


def router_embeddings(router: LearnedRouter, embed: Embed, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The pooled tail vector of each prompt, as the router sees it."""
    return embed_tails(embed, [router.preambles.split(p)[1] for p in prompts])


def evaluate(router: LearnedRouter, outcomes: Outcomes, embeddings: npt.NDArray[np.float32]) -> Evaluation:
    """Score ``router`` on ``outcomes`` (restricted to the router's models) given :func:`router_embeddings`."""
    missing = [m for m in router.models if m not in outcomes.models]
    if missing:
        raise OutcomesError(f"the router routes to {missing}, which the outcomes file has no columns for")
    rows = outcomes.restrict(router.models)
    success = router.predict(embeddings, rows.prompts)
    cost = router.estimate_cost(rows.prompts)
    picks = vertex_picks(router.knob, success, cost, router.rule)
    draws = mix_draws(rows.prompts)
    index = np.arange(len(rows))
    curve = []
    for position in POSITIONS:
        pick = picks_at(router.knob, position, picks, draws)
        curve.append(Point(float(rows.scores[index, pick].mean()), float(rows.costs[index, pick].sum()), position))
    default = picks_at(router.knob, router.knob.default, picks, draws)
    seen = int(np.isin(prompt_hashes(rows.prompts), router.train_hashes).sum()) if len(router.train_hashes) else 0
    return Evaluation(
        rows=len(rows),
        baselines=baselines(rows),
        oracle=oracle(rows),
        curve=curve,
        default_knob=router.knob.default,
        tasks=per_task(router, rows, default),
        seen_in_training=seen,
    )


def per_task(router: LearnedRouter, rows: Outcomes, pick: npt.NDArray[np.intp]) -> list[TaskRow]:
    """Accuracy, cost share and model shares per task (the file's task column, else the preamble found)."""
    labels = rows.tasks if rows.tasks and any(rows.tasks) else [
        router.preambles.label(router.preambles.split(p)[0]) for p in rows.prompts
    ]  # fmt: skip
    best = int(np.argmax(rows.scores.mean(axis=0)))
    index = np.arange(len(rows))
    out = []
    for task in sorted(set(labels)):
        mask = np.array([label == task for label in labels])
        chosen = pick[mask]
        best_cost = float(rows.costs[mask, best].sum())
        counts = np.bincount(chosen, minlength=len(rows.models)) / max(len(chosen), 1)
        out.append(
            TaskRow(
                task=task or "(none)",
                rows=int(mask.sum()),
                accuracy=float(rows.scores[index[mask], chosen].mean()),
                best_accuracy=float(rows.scores[mask, best].mean()),
                cost_share=float(rows.costs[index[mask], chosen].sum()) / best_cost if best_cost > 0 else 0.0,
                picks={m: float(c) for m, c in zip(rows.models, counts, strict=True) if c > 0},
            )
        )
    return out


def mix_frontier(points: dict[str, Point]) -> list[tuple[float, float]]:
    """Vertices ``(cost, accuracy)`` of the random-mix line: the upper hull from the cheapest to the most accurate."""
    pts = [(p.cost_usd, p.accuracy) for p in points.values()]
    return [pts[i] for i in upper_hull(pts)]


def mix_accuracy(frontier: list[tuple[float, float]], cost: float) -> float:
    """Accuracy of the best random mix costing ``cost`` (the cheapest model's below it, the best's above)."""
    costs = [c for c, _ in frontier]
    accs = [a for _, a in frontier]
    return float(np.interp(cost, costs, accs))
