"""``train_router``: from an outcomes file's training rows to a :class:`LearnedRouter`.

Everything is chosen on the training rows alone: the feature view (0, 16, 32 or 64 principal
components of the embedding, always with the cheap features) and the L2 penalty of each model's
classifier by k-fold cross-validated log-loss, the Platt calibration on the out-of-fold logits,
and the default threshold: the lowest one whose out-of-fold accuracy reaches ``target`` times the
accuracy of the best single model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokenomy import __version__
from tokenomy.routing.learned.evaluate import curve_points
from tokenomy.routing.learned.features import CHEAP_FEATURES, Embed, feature_matrix
from tokenomy.routing.learned.logistic import F64, PENALTIES, View, fit_models, single_threaded_blas
from tokenomy.routing.learned.outcomes import HOLDOUT_FRACTION, Outcomes, OutcomesError
from tokenomy.routing.learned.router import LearnedRouter, Rule

PCA_DIMS = (0, 16, 32, 64)
MIN_ROWS = 20


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """Knobs of :func:`train_router` (the defaults are what the CLI uses)."""

    split: str | None = "train"
    rule: Rule = "margin"
    target: float = 0.97
    folds: int = 5
    seed: int = 0
    pca_dims: tuple[int, ...] = PCA_DIMS
    penalties: tuple[float, ...] = PENALTIES


def pca_views(embeddings: F64, dims: tuple[int, ...]) -> list[View]:
    """Views ``[top-k principal components of the embedding | cheap features]``, one per ``k``."""
    dim = embeddings.shape[1]
    cheap = len(CHEAP_FEATURES)
    mean = embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(embeddings - mean, full_matrices=False)
    views = []
    for k in dims:
        k = min(k, vt.shape[0])
        matrix = np.zeros((dim + cheap, k + cheap))
        matrix[:dim, :k] = vt[:k].T
        matrix[dim:, k:] = np.eye(cheap)
        offset = np.concatenate([-mean @ vt[:k].T, np.zeros(cheap)])
        views.append(View(f"pca{k}" if k else "cheap-only", matrix, offset))
    return views


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


def train_router(
    outcomes: Outcomes, embed: Embed, options: TrainOptions | None = None, source: str = ""
) -> LearnedRouter:
    """Fit a router on the rows of ``options.split`` (all rows when ``None``)."""
    options = options or TrainOptions()
    rows = outcomes if options.split is None else outcomes.split(options.split)
    if len(rows) < MIN_ROWS:
        raise OutcomesError(f"{len(rows)} training rows; the router needs at least {MIN_ROWS}")
    folds = max(2, min(options.folds, len(rows) // 5))
    embeddings = np.asarray(embed(rows.prompts), dtype=np.float32)
    x = feature_matrix(embeddings, rows.prompts).astype(np.float64)
    views = pca_views(embeddings.astype(np.float64), options.pca_dims)
    with single_threaded_blas():
        fitted = fit_models(x, rows.scores, views, options.penalties, folds=folds, seed=options.seed)
    base, per_char = fit_costs(rows.prompts, rows.costs)
    estimated = base + per_char * np.array([len(p) for p in rows.prompts], dtype=np.float64)[:, None]
    oof_curve = curve_points(fitted.oof, estimated, rows, options.rule)
    best_single = float(rows.scores.mean(axis=0).max())
    reaching = [p for p in oof_curve if p.accuracy >= options.target * best_single]
    threshold = reaching[0].threshold if reaching and reaching[0].threshold is not None else 1.0
    meta = {
        "trained_on": Path(source).name if source else "",
        "rows": len(rows),
        "split": options.split,
        "holdout_fraction": HOLDOUT_FRACTION,
        "target": options.target,
        "cv": {"folds": folds, "seed": options.seed, "chosen": dict(zip(rows.models, fitted.chosen, strict=True))},
        "train_accuracy": dict(zip(rows.models, rows.scores.mean(axis=0).tolist(), strict=True)),
        "mean_cost_usd": dict(zip(rows.models, rows.costs.mean(axis=0).tolist(), strict=True)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tokenomy": __version__,
    }
    return LearnedRouter(
        models=list(rows.models),
        weights=fitted.weights,
        bias=fitted.bias,
        scale=fitted.scale,
        shift=fitted.shift,
        cost_base=base,
        cost_per_char=per_char,
        threshold=float(threshold),
        rule=options.rule,
        meta=meta,
    )
