"""Router families, each fitted with k-fold cross-validation on the training rows only.

Every family returns out-of-fold predictions for the training rows (so that families and their
hyperparameters can be compared on prompts they did not see) and a scorer refitted on all rows.
Only rows with a fold (``ids >= 0``) get out-of-fold predictions; rows with -1 join the final fit
only, which keeps cross-validation on very large files to a sample.

* ``logistic``: per model, an L2 logistic regression on ``[top principal components of the tail
  vector | preamble one-hot | cheap features]``; how many components (0 to 64) by out-of-fold
  cost-quality area, each model's penalty by out-of-fold log-loss; Platt-calibrated (:mod:`.logistic`);
* ``knn``: the smoothed success rate of the k most similar training prompts (:class:`KnnScorer`),
  k by out-of-fold cost-quality area;
* ``mf``: matrix factorisation of prompt x model as in RouteLLM's ``mf`` router (a prompt's
  features projected to ``rank`` dimensions, dotted with a learned vector per model), fitted to
  each model's own outcomes rather than to pairwise wins (per-model outcomes carry more
  information than who-beat-whom); rank and penalty by out-of-fold area; Platt-calibrated;
* ``winprob`` (two models): the probability that the strong model gets right a prompt the weak
  one gets wrong, RouteLLM's strong/weak win-rate framing, as a logistic regression (view by area).

"Out-of-fold area" is the cost-quality area of the rows' out-of-fold decisions (see ``train.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.routing.learned.logistic import PENALTIES, Fitted, View, fit_models, platt
from tokenomy.routing.learned.scorers import F64, Ints, KnnScorer, LinearScorer, Scorer, sigmoid

FAMILIES = ("logistic", "knn", "mf", "winprob")
KNN_KS = (5, 10, 20, 40, 80, 160, 320)
KNN_ALPHA = 2.0
KNN_DIMS = 64
KNN_MAX_REFS = 10_000
MF_RANKS = (4, 16)
MF_PENALTIES = (3.0, 30.0, 300.0)
MF_DIMS = 64
PCA_DIMS = (0, 16, 32, 64)


@dataclass(frozen=True, slots=True)
class Inputs:
    """The training rows' features: pooled tail vectors, preamble groups and cheap features."""

    emb: F64  # (rows, dim)
    group: Ints  # (rows,)
    cheap: F64  # (rows, cheap features)
    groups: int

    @property
    def dim(self) -> int:
        return int(self.emb.shape[1])

    def x(self) -> F64:
        """``[emb | group one-hot | cheap]``, the raw features of the linear scorers."""
        onehot = np.zeros((len(self.group), self.groups))
        onehot[np.arange(len(self.group)), self.group] = 1.0
        return np.hstack([self.emb, onehot, self.cheap])


@dataclass(frozen=True, slots=True)
class FamilyFit:
    """A family's out-of-fold predictions, its refitted scorer and what cross-validation chose."""

    family: str
    oof: F64  # (rows, models)
    scorer: Scorer
    chosen: str
    params: dict[str, Any] = field(default_factory=dict)


def pca_basis(emb: F64, dims: int) -> tuple[F64, F64]:
    """Mean and the top ``dims`` principal directions ``(dim, k)`` of ``emb``."""
    mean = emb.mean(axis=0)
    _, _, vt = np.linalg.svd(emb - mean, full_matrices=False)
    k = max(1, min(dims, vt.shape[0]))
    return mean, vt[:k].T.copy()


def _views(inputs: Inputs, dims: tuple[int, ...]) -> list[View]:
    """``[top-k principal components of emb | group one-hot | cheap]`` for each k."""
    d, extra = inputs.dim, inputs.groups + inputs.cheap.shape[1]
    mean, basis = pca_basis(inputs.emb, max(dims) if dims else 0)
    views = []
    for k in dims:
        k = min(k, basis.shape[1])
        matrix = np.zeros((d + extra, k + extra))
        matrix[:d, :k] = basis[:, :k]
        matrix[d:, k:] = np.eye(extra)
        offset = np.concatenate([-mean @ basis[:, :k], np.zeros(extra)])
        views.append(View(f"pca{k}" if k else "no tail vector", matrix, offset))
    return views


def fit_logistic_family(
    inputs: Inputs, y: F64, ids: npt.NDArray[np.int64], area: Callable[[F64], float],
    dims: tuple[int, ...] = PCA_DIMS, penalties: tuple[float, ...] = PENALTIES,
) -> FamilyFit:  # fmt: skip
    """The view (how many principal components of the tail vector) by out-of-fold area; per model the
    penalty by out-of-fold log-loss."""
    x = inputs.x()
    best: tuple[float, Fitted, str] | None = None
    tried = []
    for view in _views(inputs, dims):
        fitted = fit_models(x, y, [view], penalties, ids=ids)
        score = area(fitted.oof)
        tried.append(f"{view.name.replace('no tail vector', 'pca0')} {score:.4f}")
        if best is None or score > best[0] + 1e-9:
            best = (score, fitted, view.name)
    assert best is not None
    _, fitted, name = best
    scorer = LinearScorer(fitted.weights, fitted.bias, fitted.scale, fitted.shift, inputs.dim, inputs.groups)
    chosen = f"{name} (area {', '.join(tried)}); L2 penalty per model by log-loss"
    return FamilyFit("logistic", fitted.oof, scorer, chosen, {"view": name, "per_model": fitted.chosen})


def fit_winprob(
    inputs: Inputs, y: F64, ids: npt.NDArray[np.int64], strong: int, area: Callable[[F64], float],
    dims: tuple[int, ...] = PCA_DIMS, penalties: tuple[float, ...] = PENALTIES,
) -> FamilyFit:  # fmt: skip
    """Two models: P(strong right and weak wrong); the weak model's column is a constant 0. The view by
    out-of-fold area."""
    weak = 1 - strong
    win = np.clip(y[:, strong] - y[:, weak], 0.0, 1.0)[:, None]
    x = inputs.x()
    best: tuple[float, Fitted, F64, str] | None = None
    for view in _views(inputs, dims):
        fitted = fit_models(x, win, [view], penalties, ids=ids)
        oof = np.zeros((len(y), 2))
        oof[:, strong] = fitted.oof[:, 0]
        score = area(oof)
        if best is None or score > best[0] + 1e-9:
            best = (score, fitted, oof, view.name)
    assert best is not None
    score, fitted, oof, name = best
    weights = np.zeros((fitted.weights.shape[0], 2))
    weights[:, strong] = fitted.weights[:, 0]
    bias, scale, shift = np.zeros(2), np.zeros(2), np.full(2, -40.0)
    bias[strong], scale[strong], shift[strong] = fitted.bias[0], fitted.scale[0], fitted.shift[0]
    scorer = LinearScorer(weights, bias, scale, shift, inputs.dim, inputs.groups)
    chosen = f"{fitted.chosen[0]} (out-of-fold area {score:.4f})"
    return FamilyFit("winprob", oof, scorer, chosen, {"strong": strong, "view": name})


# -- k nearest neighbours ------------------------------------------------------------------


def _group_prior(group: Ints, y: F64, groups: int) -> F64:
    """Mean outcome per group (the overall mean for a group without rows)."""
    prior = np.tile(y.mean(axis=0), (groups, 1))
    for g in np.unique(group):
        prior[g] = y[group == g].mean(axis=0)
    return prior


def _knn_sorted(q: F64, q_group: Ints, ref: F64, ref_group: Ints, kmax: int) -> Ints:
    """Indices of each query's ``kmax`` nearest references, nearest first (same group first)."""
    out = np.zeros((len(q), kmax), dtype=np.intp)
    for start in range(0, len(q), 512):
        sims = q[start : start + 512] @ ref.T
        sims += 4.0 * (q_group[start : start + 512, None] == ref_group[None, :])
        top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 512] = np.take_along_axis(top, order, axis=1)
    return out


def fit_knn(
    inputs: Inputs, y: F64, ids: npt.NDArray[np.int64], area: Callable[[F64], float],
    ks: tuple[int, ...] = KNN_KS, seed: int = 0,
) -> FamilyFit:  # fmt: skip
    """k by the out-of-fold cost-quality ``area`` of each k's predictions."""
    mean, proj = pca_basis(inputs.emb, KNN_DIMS)
    z = (inputs.emb - mean) @ proj
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    folds = int(ids.max()) + 1
    cv = ids >= 0
    kmax = min(max(ks), int(min((cv & (ids != f)).sum() for f in range(folds))))
    ks = tuple(k for k in ks if k <= kmax) or (kmax,)
    oof = {k: np.zeros_like(y) for k in ks}
    for fold in range(folds):
        train, held = np.flatnonzero(cv & (ids != fold)), np.flatnonzero(ids == fold)
        prior = _group_prior(inputs.group[train], y[train], inputs.groups)
        near = _knn_sorted(z[held], inputs.group[held], z[train], inputs.group[train], kmax)
        cum = np.cumsum(y[train][near], axis=1)  # (held, kmax, models)
        for k in ks:
            oof[k][held] = (cum[:, k - 1] + KNN_ALPHA * prior[inputs.group[held]]) / (k + KNN_ALPHA)
    scores = {k: area(oof[k]) for k in ks}
    best = max(ks, key=lambda k: (scores[k], -k))
    keep = np.arange(len(y))
    if len(keep) > KNN_MAX_REFS:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), KNN_MAX_REFS, replace=False))
    scorer = KnnScorer(
        mean=mean, proj=proj, ref=z[keep].astype(np.float32), ref_group=inputs.group[keep].astype(np.intp),
        ref_y=y[keep], prior=_group_prior(inputs.group, y, inputs.groups), k=best, alpha=KNN_ALPHA,
    )  # fmt: skip
    chosen = f"k={best} (area " + ", ".join(f"k={k} {scores[k]:.4f}" for k in ks) + ")"
    return FamilyFit("knn", oof[best], scorer, chosen, {"k": best, "alpha": KNN_ALPHA})


# -- matrix factorisation ------------------------------------------------------------------


def _mf_fit(x: F64, y: F64, rank: int, penalty: float, seed: int) -> tuple[F64, F64, F64]:
    """``(W, U, b)`` minimising cross-entropy of ``sigmoid(x W U + b)`` + ``penalty/2 (|W|^2 + |U|^2)``."""
    from scipy.optimize import minimize  # type: ignore[import-untyped,unused-ignore]

    _n, d = x.shape
    m = y.shape[1]
    rng = np.random.default_rng(seed)
    mean = np.clip(y.mean(axis=0), 1e-3, 1 - 1e-3)
    start = np.concatenate([rng.normal(0, 0.01, d * rank), rng.normal(0, 0.01, rank * m), np.log(mean / (1 - mean))])

    def unpack(theta: F64) -> tuple[F64, F64, F64]:
        return theta[: d * rank].reshape(d, rank), theta[d * rank : d * rank + rank * m].reshape(rank, m), theta[-m:]

    def objective(theta: F64) -> tuple[float, F64]:
        w, u, b = unpack(theta)
        h = x @ w
        z = h @ u + b
        g = sigmoid(z) - y
        value = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * penalty * (np.sum(w * w) + np.sum(u * u)))
        gw = x.T @ (g @ u.T) + penalty * w
        gu = h.T @ g + penalty * u
        return value, np.concatenate([gw.ravel(), gu.ravel(), g.sum(axis=0)])

    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 200})
    return unpack(np.asarray(result.x, dtype=np.float64))


def fit_mf(
    inputs: Inputs, y: F64, ids: npt.NDArray[np.int64], area: Callable[[F64], float], ranks: tuple[int, ...] = MF_RANKS,
    penalties: tuple[float, ...] = MF_PENALTIES, seed: int = 0,
) -> FamilyFit:  # fmt: skip
    """The prompt side is ``[top 64 principal components of the tail vector | preamble | cheap]``,
    standardised (RouteLLM projects the raw embedding; the components keep the fit fast)."""
    view = _views(inputs, (MF_DIMS,))[0]
    raw = view.apply(inputs.x())
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std[std < 1e-8] = 1.0
    x = (raw - mean) / std
    folds = int(ids.max()) + 1
    cv = ids >= 0
    best: tuple[float, int, float, F64, F64, F64] | None = None
    tried = []
    for rank in ranks:
        for penalty in penalties:
            logits = np.zeros_like(y)
            for fold in range(folds):
                train, held = cv & (ids != fold), ids == fold
                w, u, b = _mf_fit(x[train], y[train], rank, penalty, seed)
                logits[held] = x[held] @ w @ u + b
            platts = [platt(logits[cv, j], y[cv, j]) for j in range(y.shape[1])]
            scale = np.array([a for a, _ in platts])
            shift = np.array([c for _, c in platts])
            score = area(sigmoid(scale * logits + shift))
            tried.append(f"{rank}/{penalty:g} {score:.4f}")
            if best is None or score > best[0] + 1e-9:
                best = (score, rank, penalty, logits, scale, shift)
    assert best is not None
    score, rank, penalty, logits, scale, shift = best
    w, u, b = _mf_fit(x, y, rank, penalty, seed)
    on_view = (w @ u) / std[:, None]  # logit = view(x) @ on_view + intercept
    bias = b - mean @ on_view + view.offset @ on_view
    scorer = LinearScorer(view.matrix @ on_view, bias, scale, shift, inputs.dim, inputs.groups)
    oof = np.where(cv[:, None], sigmoid(scale * logits + shift), 0.0)
    chosen = f"rank {rank}, penalty {penalty:g} (area by rank/penalty {', '.join(tried)})"
    return FamilyFit("mf", oof, scorer, chosen, {"rank": rank, "penalty": penalty})
