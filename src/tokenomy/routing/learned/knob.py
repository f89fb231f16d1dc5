"""The operating-point knob: any point on the convex hull of the cost-quality curve, chosen by position.

An **operating point** is a way of deciding: the decision rule at one threshold, or one model for
every prompt. On the training rows' out-of-fold predictions each has a mean cost and accuracy; the
**knob** keeps the upper convex hull of those points from the cheapest to the most accurate (the
single models are among the points, so the hull is never below the random mix of models). A knob
``position`` in [0, 1] names a cost on that hull, linearly from its cheapest vertex (0) to its most
accurate (1); between two vertices a share ``q`` of prompts (the prompt's CRC-32 below ``q``) takes
the pricier vertex's decision and the rest the cheaper one's, so every point of the hull is
reachable and the same prompt always gets the same decision.

The default position comes from the out-of-fold rows with a safety margin (one-sided 95% bound of
a paired mean, :func:`default_position`): the cheapest position whose accuracy bound reaches
``target_quality`` times the best model's, or the most accurate whose cost bound stays within
``max_cost_share`` times the best model's cost.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]
Z_ONE_SIDED_95 = 1.645
GRID = 401


def mix_draw(text: str) -> float:
    """The prompt's fixed draw in [0, 1) for mixing two operating points (CRC-32 of its UTF-8)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) / 4294967296.0


def mix_draws(texts: Sequence[str]) -> F64:
    return np.fromiter((mix_draw(t) for t in texts), dtype=np.float64, count=len(texts))


@dataclass(frozen=True, slots=True)
class Vertex:
    """One hull vertex: ``kind`` ``threshold`` (value: the decision rule's threshold) or ``model``
    (value: a model's column); with its out-of-fold mean cost per prompt and accuracy."""

    kind: Literal["threshold", "model"]
    value: float
    cost: float
    accuracy: float

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "cost": self.cost, "accuracy": self.accuracy}


@dataclass(frozen=True, slots=True)
class Knob:
    """Hull vertices (cheapest first) and the default position."""

    vertices: tuple[Vertex, ...]
    default: float

    def locate(self, position: float) -> tuple[int, int, float]:
        """``(lower vertex, upper vertex, share of prompts sent to the upper one)`` at ``position``."""
        v = self.vertices
        if len(v) == 1:
            return 0, 0, 0.0
        lo, hi = v[0].cost, v[-1].cost
        target = lo + min(max(position, 0.0), 1.0) * (hi - lo)
        for i in range(len(v) - 1):
            if target <= v[i + 1].cost or i == len(v) - 2:
                span = v[i + 1].cost - v[i].cost
                q = (target - v[i].cost) / span if span > 0 else 1.0
                return i, i + 1, min(max(q, 0.0), 1.0)
        return len(v) - 1, len(v) - 1, 0.0  # pragma: no cover - the loop always returns

    def as_json(self) -> dict[str, Any]:
        return {"vertices": [v.as_json() for v in self.vertices], "default": self.default}

    @staticmethod
    def from_json(data: Any) -> Knob:
        vertices = tuple(
            Vertex("model" if v["kind"] == "model" else "threshold", float(v["value"]), float(v["cost"]),
                   float(v["accuracy"]))
            for v in data["vertices"]
        )  # fmt: skip
        if not vertices:
            raise ValueError("no vertices")
        return Knob(vertices, float(data["default"]))


def upper_hull(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the upper-left concave hull of ``(cost, accuracy)`` points, from the cheapest to the
    most accurate (ties: the cheaper, then the more accurate)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    top = max(p[1] for p in points)
    hull: list[int] = []
    for i in order:
        c, a = points[i]
        if hull and a <= points[hull[-1]][1]:
            continue  # dominated: costs at least as much, not more accurate
        while len(hull) >= 2 and _turn(points[hull[-2]], points[hull[-1]], (c, a)) >= 0:
            hull.pop()
        hull.append(i)
        if a >= top:
            break
    return hull


def _turn(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def hull_area(points: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    """Mean accuracy of the hull over costs ``[lo, hi]`` (flat beyond its ends): the cost-quality area,
    normalised so it reads as an accuracy."""
    idx = upper_hull(points)
    xs = np.array([points[i][0] for i in idx])
    ys = np.array([points[i][1] for i in idx])
    if hi <= lo:
        return float(np.interp(lo, xs, ys))
    grid = np.linspace(lo, hi, 1001)
    return float(np.interp(grid, xs, ys).mean())


def picks_at(knob: Knob, position: float, vertex_picks: Sequence[Ints], draws: F64) -> Ints:
    """Per-row picks at ``position`` given each vertex's picks and the rows' mixing draws."""
    lo, hi, q = knob.locate(position)
    out: Ints = np.where(draws < q, vertex_picks[hi], vertex_picks[lo])
    return out


def default_position(
    knob: Knob,
    vertex_picks: Sequence[Ints],
    draws: F64,
    scores: F64,
    costs: F64,
    target_quality: float | None,
    max_cost_share: float | None,
    z: float = Z_ONE_SIDED_95,
) -> tuple[float, str]:
    """The default position and a sentence on how it was chosen (see the module docstring)."""
    rows = np.arange(len(draws))
    best = int(np.argmax(scores.mean(axis=0)))
    grid = np.linspace(0.0, 1.0, GRID)

    def bound(values: F64, sign: float) -> float:
        sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        return float(values.mean()) + sign * z * sd / math.sqrt(max(len(values), 1))

    if max_cost_share is not None:
        chosen = None
        for position in grid:
            pick = picks_at(knob, float(position), vertex_picks, draws)
            if bound(costs[rows, pick] - max_cost_share * costs[:, best], +1.0) <= 0:
                chosen = float(position)
        if chosen is None:
            return 0.0, f"no position keeps the cost within {max_cost_share:.0%} of the best model's: the cheapest"
        return chosen, f"the most accurate position whose cost stays within {max_cost_share:.0%} of the best model's"
    target = 0.97 if target_quality is None else target_quality
    for position in grid:
        pick = picks_at(knob, float(position), vertex_picks, draws)
        if bound(scores[rows, pick] - target * scores[:, best], -1.0) >= 0:
            return float(position), f"the cheapest position reaching {target:.0%} of the best model's accuracy"
    return 1.0, f"no position reaches {target:.0%} of the best model's accuracy with the margin: the most accurate"
