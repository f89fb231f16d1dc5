"""Precision and recall with exact 95 % intervals, at a fixed threshold or one chosen per fold (nested).

Where the pairs name groups (writers, sources), accepted pairs of one group are not independent
draws: a group whose questions all score high contributes many hits and many near misses at once.
The estimate then also gives each group's counts and a 95 % interval for precision from a bootstrap
over whole groups (the precision of pairs from groups like these, not from these groups only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.calibrate import Pair


@dataclass(frozen=True, slots=True)
class Estimate:
    """Accepted pairs, false ones among them, precision and recall with Clopper-Pearson 95 % intervals."""

    accepted: int
    false: int
    same: int
    precision: float | None
    precision_95: tuple[float, float] | None
    recall: float
    recall_95: tuple[float, float]
    thresholds: tuple[float | None, ...] = ()
    by_group: tuple[tuple[str, int, int, int], ...] = ()
    """Where the pairs name groups: (group, accepted, false, same) of each."""
    precision_95_groups: tuple[float, float] | None = None
    """Where the pairs name at least two groups: precision's 95 % interval resampling whole groups."""


def _interval(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return round(float(ci.low), 4), round(float(ci.high), 4)


def labels_of(pairs: Sequence[Pair]) -> npt.NDArray[np.bool_]:
    """Each pair's label as a boolean array."""
    return np.array([p.label for p in pairs], dtype=bool)


BOOTSTRAP_RESAMPLES = 10_000


def _by_group(
    accepted: npt.NDArray[np.bool_], labels: npt.NDArray[np.bool_], named: Sequence[str]
) -> tuple[tuple[str, int, int, int], ...]:
    names = np.array(named, dtype=object)
    out = []
    for name in sorted(set(named) - {""}, key=lambda g: (len(g), g)):  # "2" before "10"
        mine = names == name
        n, tp = int((accepted & mine).sum()), int((accepted & labels & mine).sum())
        out.append((name, n, n - tp, int((labels & mine).sum())))
    return tuple(out)


def _group_interval(rows: tuple[tuple[str, int, int, int], ...]) -> tuple[float, float] | None:
    """Percentile interval of pooled precision over resamples of whole groups (seeded; resamples that
    accept nothing are left out)."""
    if len(rows) < 2:
        return None
    n = np.array([r[1] for r in rows], dtype=np.float64)
    tp = n - np.array([r[2] for r in rows], dtype=np.float64)
    draws = np.random.default_rng(0).integers(0, len(rows), size=(BOOTSTRAP_RESAMPLES, len(rows)))
    accepted, right = n[draws].sum(axis=1), tp[draws].sum(axis=1)
    some = accepted > 0
    if not some.any():
        return None
    low, high = np.percentile(right[some] / accepted[some], [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def estimate(
    accepted: npt.NDArray[np.bool_], labels: npt.NDArray[np.bool_], thresholds: Sequence[float | None] = (),
    groups: Sequence[str] = (),
) -> Estimate:  # fmt: skip
    """The :class:`Estimate` of accepting ``accepted`` given the true ``labels`` (``groups``: each
    pair's :attr:`~tokenomy.cache.semantic.calibrate.Pair.group`, for the per-group figures)."""
    n, tp, same = int(accepted.sum()), int((accepted & labels).sum()), int(labels.sum())
    rows = _by_group(accepted, labels, groups) if any(groups) else ()
    return Estimate(
        n, n - tp, same,
        round(tp / n, 4) if n else None, _interval(tp, n) if n else None,
        round(tp / same, 4) if same else 0.0, _interval(tp, same) if same else (0.0, 1.0),
        tuple(thresholds), rows, _group_interval(rows),
    )  # fmt: skip


def nested(
    pairs: Sequence[Pair], scores: npt.NDArray[np.float64], fold: npt.NDArray[np.int64], grid: Sequence[float],
    target: float,
) -> Estimate:  # fmt: skip
    """What choosing the threshold gives on pairs it was not chosen on: for each fold, the threshold
    ``tokenomy cache calibrate`` would recommend from the other folds' scores, applied to that fold."""
    accepted = np.zeros(len(pairs), dtype=bool)
    chosen: list[float | None] = []
    for k in sorted(set(fold.tolist())):
        rest = np.flatnonzero(fold != k).tolist()
        point = cal.recommend(cal.curve([pairs[i] for i in rest], scores[rest], False, grid), target)
        chosen.append(None if point is None else point.threshold)
        if point is not None:
            held = fold == k
            accepted[held] = scores[held] >= point.threshold
    return estimate(accepted, labels_of(pairs), chosen, [p.group for p in pairs])


TABLE_HEADER = "| model | accepted | false | precision [95 % CI] | recall [95 % CI] |\n|---|---|---|---|---|"


def table_row(name: str, row: dict[str, Any]) -> str:
    """A Markdown table row (:data:`TABLE_HEADER`) of an :class:`Estimate` as a dict (``asdict``)."""
    ci, rci = row["precision_95"], row["recall_95"]
    precision = "-" if row["precision"] is None else f"{row['precision']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    recall = f"{row['recall']:.3f} [{rci[0]:.3f}, {rci[1]:.3f}]"
    return f"| {name} | {row['accepted']} | {row['false']} | {precision} | {recall} |"
