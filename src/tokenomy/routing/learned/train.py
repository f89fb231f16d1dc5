"""``train_router``: from an outcomes file's training rows to a :class:`LearnedRouter`.

Everything is chosen on the training rows alone, by k-fold cross-validation with folds grouped by
prompt text (a duplicated prompt never sits on both sides of a fold):

1. the preambles shared by many prompts (:mod:`.preamble`), then the features of each prompt;
2. each family's hyperparameters and out-of-fold predictions (:mod:`.families`);
3. the family: the largest out-of-fold cost-quality area (:func:`.knob.hull_area` over the costs from
   the cheapest model to the most accurate one), ``options.family`` to force one;
4. the knob: the hull of that family's out-of-fold operating points, and its default position from
   ``target_quality`` or ``max_cost_share`` with a safety margin (:mod:`.knob`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokenomy import __version__
from tokenomy.routing.learned import families as fam
from tokenomy.routing.learned.checks import check_training
from tokenomy.routing.learned.features import Embed, prompt_features
from tokenomy.routing.learned.knob import Knob, Vertex, default_position, hull_area, mix_draws, upper_hull
from tokenomy.routing.learned.logistic import PENALTIES, single_threaded_blas
from tokenomy.routing.learned.outcomes import HOLDOUT_FRACTION, Outcomes
from tokenomy.routing.learned.preamble import learn_preambles
from tokenomy.routing.learned.router import F64, IntArray, LearnedRouter, Rule, frontier, select

THRESHOLDS: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(101))
AUTO = "auto"
MIX_MARGIN_Z = 1.645
CV_MAX_ROWS = 20_000
"""Cross-validation (family, hyperparameters, knob) runs on at most this many rows, a seeded sample
of whole prompts; the final fit uses every training row."""


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """Knobs of :func:`train_router` (the defaults are what the CLI uses)."""

    split: str | None = "train"
    rule: Rule = "margin"
    family: str = AUTO
    target_quality: float | None = 0.97
    max_cost_share: float | None = None
    folds: int = 5
    seed: int = 0
    pca_dims: tuple[int, ...] = fam.PCA_DIMS
    penalties: tuple[float, ...] = PENALTIES
    knn_ks: tuple[int, ...] = fam.KNN_KS
    mf_ranks: tuple[int, ...] = fam.MF_RANKS
    mf_penalties: tuple[float, ...] = fam.MF_PENALTIES


@dataclass(frozen=True, slots=True)
class OperatingPoints:
    """Out-of-fold operating points: the rule at each threshold, then each model alone."""

    vertices: list[Vertex]
    picks: list[IntArray]

    def area(self, lo: float, hi: float) -> float:
        return hull_area([(v.cost, v.accuracy) for v in self.vertices], lo, hi)

    def knob(self, default: float = 1.0) -> tuple[Knob, list[IntArray]]:
        idx = upper_hull([(v.cost, v.accuracy) for v in self.vertices])
        return Knob(tuple(self.vertices[i] for i in idx), default), [self.picks[i] for i in idx]


def operating_points(
    success: F64, estimated: F64, scores: F64, costs: F64, rule: Rule, folds: np.ndarray | None = None
) -> OperatingPoints:
    """Each threshold's and each model's out-of-fold cost and accuracy; a threshold point that is not
    above the random mix of models with some confidence (:func:`beats_mix`), or not in every fold
    of ``folds``, is left out, so that where the router cannot show a gain the knob mixes models instead."""
    rows = np.arange(len(scores))
    eligible = frontier(success, estimated)
    vertices, picks = [], []
    for t in THRESHOLDS:
        pick = select(success, estimated, t, rule, eligible)
        if not beats_mix(scores[rows, pick], costs[rows, pick], scores, costs, folds=folds):
            continue
        picks.append(pick)
        vertices.append(Vertex("threshold", t, float(costs[rows, pick].mean()), float(scores[rows, pick].mean())))
    for m in range(scores.shape[1]):
        picks.append(np.full(len(rows), m, dtype=np.intp))
        vertices.append(Vertex("model", float(m), float(costs[:, m].mean()), float(scores[:, m].mean())))
    return OperatingPoints(vertices, picks)


def beats_mix(
    score: F64, cost: F64, scores: F64, costs: F64, z: float = MIX_MARGIN_Z, folds: np.ndarray | None = None
) -> bool:
    """Whether per-row ``score`` beats the random mix of models at the same mean cost by more than
    ``z`` standard errors of the paired per-row difference, and (given each row's fold) on the rows
    of every fold alone."""
    means = [(float(costs[:, m].mean()), float(scores[:, m].mean())) for m in range(scores.shape[1])]
    hull = upper_hull(means)
    spent = float(cost.mean())
    mix = scores[:, hull[-1]]
    if spent <= means[hull[0]][0]:
        mix = scores[:, hull[0]]
    for a, b in itertools.pairwise(hull):
        if means[a][0] <= spent <= means[b][0]:
            q = (spent - means[a][0]) / (means[b][0] - means[a][0]) if means[b][0] > means[a][0] else 1.0
            mix = (1 - q) * scores[:, a] + q * scores[:, b]
            break
    diff = score - mix
    spread = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    if float(diff.mean()) - z * spread / math.sqrt(max(len(diff), 1)) <= 0:
        return False
    if folds is None:
        return True
    gains = np.bincount(folds, weights=diff) / np.maximum(np.bincount(folds), 1)
    return bool((gains[np.bincount(folds) > 0] > 0).all())


def fit_costs(texts: list[str], costs: F64) -> tuple[F64, F64]:
    """Per model ``cost ≈ base + per_char * len(prompt)`` (least squares; a flat mean if that fails)."""
    chars = np.array([len(t) for t in texts], dtype=np.float64)
    design = np.stack([np.ones_like(chars), chars], axis=1)
    base = costs.mean(axis=0)
    per_char = np.zeros(costs.shape[1])
    if chars.std() > 0:
        coef, *_ = np.linalg.lstsq(design, costs, rcond=None)
        for m in range(costs.shape[1]):
            if coef[1, m] > 0 and coef[0, m] >= 0:
                base[m], per_char[m] = coef[0, m], coef[1, m]
    return base, per_char


def fold_ids(prompts: list[str], folds: int, seed: int) -> np.ndarray:
    """Each row's fold; rows with the same prompt text share one (scikit-learn's ``GroupKFold``)."""
    from sklearn.model_selection import GroupKFold  # type: ignore[import-untyped,unused-ignore]

    _, groups = np.unique(np.array(prompts, dtype=object), return_inverse=True)
    ids = np.zeros(len(prompts), dtype=np.int64)
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(prompts)), groups=groups)):
        ids[held] = fold
    return ids


def cv_sample(prompts: list[str], limit: int, seed: int) -> np.ndarray:
    """A mask of the rows cross-validation uses: all of them, or whole prompts drawn until ``limit`` rows."""
    if len(prompts) <= limit:
        return np.ones(len(prompts), dtype=bool)
    _, group = np.unique(np.array(prompts, dtype=object), return_inverse=True)
    sizes = np.bincount(group)
    order = np.random.default_rng(seed).permutation(len(sizes))
    chosen = order[np.cumsum(sizes[order]) <= limit]
    return np.isin(group, chosen)


def prompt_hashes(prompts: list[str]) -> np.ndarray:
    """First 8 bytes of each prompt's SHA-1, as int64 (stored so ``evaluate`` can spot training prompts)."""
    return np.array(
        [int.from_bytes(hashlib.sha1(p.encode("utf-8")).digest()[:8], "big", signed=True) for p in prompts],
        dtype=np.int64,
    )


def train_router(
    outcomes: Outcomes,
    embed: Embed,
    options: TrainOptions | None = None,
    source: str = "",
    warn: Callable[[str], None] | None = None,
) -> LearnedRouter:
    """Fit a router on the rows of ``options.split`` (all rows when ``None``); ``warn`` gets each warning."""
    options = options or TrainOptions()
    rows = outcomes if options.split is None else outcomes.split(options.split)
    warnings = check_training(rows, outcomes, options.split)
    for line in warnings:
        (warn or (lambda _: None))(line)
    folds = max(2, min(options.folds, len(set(rows.prompts)) // 5))
    cv = cv_sample(rows.prompts, CV_MAX_ROWS, options.seed)
    ids = np.full(len(rows), -1, dtype=np.int64)
    ids[cv] = fold_ids([p for p, keep in zip(rows.prompts, cv, strict=True) if keep], folds, options.seed)
    preambles = learn_preambles(rows.prompts)
    emb, group, cheap = prompt_features(preambles, embed, rows.prompts)
    inputs = fam.Inputs(emb, group, cheap, preambles.groups)
    base, per_char = fit_costs(rows.prompts, rows.costs)
    estimated = base + per_char * np.array([len(p) for p in rows.prompts], dtype=np.float64)[:, None]
    mean_cost = rows.costs.mean(axis=0)
    accuracy = rows.scores.mean(axis=0)
    best = int(np.argmax(accuracy))
    lo, hi = float(rows.costs[cv].mean(axis=0).min()), float(rows.costs[cv, best].mean())

    folds_cv = ids[cv]

    def points(success: F64, folds: np.ndarray | None = None) -> OperatingPoints:
        return operating_points(success[cv], estimated[cv], rows.scores[cv], rows.costs[cv], options.rule, folds)

    wanted = list(fam.FAMILIES) if options.family == AUTO else [options.family]
    if len(rows.models) != 2 and "winprob" in wanted:
        if options.family != AUTO:
            raise ValueError("the winprob family routes between exactly two models")
        wanted.remove("winprob")
    fits: dict[str, tuple[fam.FamilyFit, OperatingPoints, float, float]] = {}
    with single_threaded_blas():
        for family in wanted:
            started = time.perf_counter()
            fit = _fit_family(family, inputs, rows.scores, ids, options, lambda s: points(s).area(lo, hi))
            # the knob's threshold vertices must beat the random mix in every fold, not only pooled
            # (hyperparameters are ranked on the pooled test alone, families by the knob they would deploy)
            ops = points(fit.oof, folds_cv)
            fits[family] = (fit, ops, ops.area(lo, hi), time.perf_counter() - started)
    chosen = max(fits, key=lambda f: fits[f][2])
    fit, ops, area, _ = fits[chosen]
    knob, picks = ops.knob()
    draws = mix_draws([p for p, keep in zip(rows.prompts, cv, strict=True) if keep])
    position, why = default_position(
        knob, picks, draws, rows.scores[cv], rows.costs[cv], options.target_quality, options.max_cost_share
    )
    knob = Knob(knob.vertices, position)
    cv_points = zip(rows.costs[cv].mean(axis=0), rows.scores[cv].mean(axis=0), strict=True)
    mix_area = hull_area([(float(c), float(a)) for c, a in cv_points], lo, hi)
    reason = (
        f"largest out-of-fold cost-quality area ({area:.4f}; random mix of models {mix_area:.4f})"
        if options.family == AUTO
        else "chosen with --family"
    )
    meta: dict[str, Any] = {
        "trained_on": Path(source).name if source else "",
        "rows": len(rows),
        "split": options.split,
        "holdout_fraction": HOLDOUT_FRACTION,
        "cv": {"folds": folds, "seed": options.seed, "grouped_by": "prompt text", "rows": int(cv.sum())},
        "family": chosen,
        "family_reason": reason,
        "families": {
            f: {"area": a, "chosen": fi.chosen, "seconds": round(s, 2), "params": fi.params}
            for f, (fi, _, a, s) in fits.items()
        },
        "random_mix_area": mix_area,
        "target_quality": options.target_quality if options.max_cost_share is None else None,
        "max_cost_share": options.max_cost_share,
        "default_reason": why,
        "preambles": len(preambles.texts),
        "warnings": warnings,
        "train_accuracy": dict(zip(rows.models, accuracy.tolist(), strict=True)),
        "mean_cost_usd": dict(zip(rows.models, mean_cost.tolist(), strict=True)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tokenomy": __version__,
    }
    router = LearnedRouter(
        models=list(rows.models),
        family=chosen,
        scorer=fit.scorer,
        preambles=preambles,
        knob=knob,
        cost_base=base,
        cost_per_char=per_char,
        rule=options.rule,
        meta=meta,
        train_hashes=prompt_hashes(rows.prompts),
    )
    return router


def _fit_family(
    family: str,
    inputs: fam.Inputs,
    y: F64,
    ids: np.ndarray,
    options: TrainOptions,
    area: Callable[[F64], float],
) -> fam.FamilyFit:
    if family == "logistic":
        return fam.fit_logistic_family(inputs, y, ids, area, options.pca_dims, options.penalties)
    if family == "knn":
        return fam.fit_knn(inputs, y, ids, area, options.knn_ks, options.seed)
    if family == "mf":
        return fam.fit_mf(inputs, y, ids, area, options.mf_ranks, options.mf_penalties, options.seed)
    if family == "winprob":
        strong = int(np.argmax(y.mean(axis=0)))
        return fam.fit_winprob(inputs, y, ids, strong, area, options.pca_dims, options.penalties)
    raise ValueError(f"unknown router family {family!r} (known: {', '.join(fam.FAMILIES)})")
