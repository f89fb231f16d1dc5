"""L2-regularised logistic regression (Newton / IRLS, soft labels), chosen by cross-validation, Platt-calibrated.

One classifier per model on shared features. For each model, k-fold cross-validated log-loss on
the training rows alone picks a feature view (e.g. how many principal components of the
embedding) and a penalty strength; a Platt scaling fitted on the same out-of-fold logits
calibrates the final model, which is refitted on all training rows and folded back into one
weight vector over the raw features.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
PENALTIES = (16.0, 64.0, 256.0, 1024.0, 4096.0)
_EPS = 1e-12


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread: these matrices are small, and a threaded BLAS on a busy machine is ~10x slower.

    Uses ``threadpoolctl`` when it is installed; otherwise leaves BLAS alone.
    """
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def sigmoid(z: F64) -> F64:
    out: F64 = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def log_loss(y: F64, p: F64) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_logistic(x: F64, y: F64, penalty: float, start: F64 | None = None, iters: int = 30) -> F64:
    """Weights ``[w..., bias]`` minimising cross-entropy + ``penalty/2 * |w|^2`` (bias unpenalised)."""
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    reg = np.full(d + 1, penalty)
    reg[-1] = 1e-6
    w = np.zeros(d + 1) if start is None else start.copy()
    if start is None:
        mean = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        w[-1] = np.log(mean / (1 - mean))

    def objective(v: F64) -> float:
        z = xa @ v
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(reg * v * v))

    current = objective(w)
    for _ in range(iters):
        p = sigmoid(xa @ w)
        grad = xa.T @ (p - y) + reg * w
        hess = (xa * (p * (1 - p))[:, None]).T @ xa
        hess[np.diag_indices_from(hess)] += reg
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-4:
            trial = w - scale * step
            value = objective(trial)
            if value <= current + 1e-12:
                break
            scale *= 0.5
        else:
            break
        w, previous, current = trial, current, value
        if previous - current < 1e-7 * max(1.0, abs(current)):
            break
    return w


@dataclass(frozen=True, slots=True)
class Fitted:
    """Weights on the *raw* features: ``logit = x @ weights + bias``; then ``p = sigmoid(scale*logit + shift)``."""

    weights: F64  # (features, models)
    bias: F64  # (models,)
    scale: F64  # Platt slope per model
    shift: F64  # Platt intercept per model
    chosen: list[str]  # the view and penalty cross-validation chose, per model
    oof: F64  # calibrated out-of-fold probabilities of the training rows, (rows, models)

    def logits(self, x: F64) -> F64:
        out: F64 = x @ self.weights + self.bias
        return out

    def proba(self, x: F64) -> F64:
        return sigmoid(self.scale * self.logits(x) + self.shift)


def fold_ids(n: int, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """A seeded assignment of ``n`` rows to ``folds`` folds of (nearly) equal size."""
    ids = np.arange(n) % folds
    np.random.default_rng(seed).shuffle(ids)
    return ids


def platt(z: F64, y: F64) -> tuple[float, float]:
    """Slope and intercept of ``sigmoid(a*z + b)`` fitted to ``y`` (a tiny ridge keeps it finite)."""
    w = fit_logistic(z[:, None], y, penalty=1e-3)
    return float(w[0]), float(w[1])


@dataclass(frozen=True, slots=True)
class View:
    """A linear view of the raw features, ``x @ matrix + offset`` (e.g. the top principal components)."""

    name: str
    matrix: F64  # (raw features, view features)
    offset: F64  # (view features,)

    def apply(self, x: F64) -> F64:
        out: F64 = x @ self.matrix + self.offset
        return out


def fit_models(
    x: F64,
    y: F64,
    views: list[View],
    penalties: tuple[float, ...] = PENALTIES,
    ids: npt.NDArray[np.int64] | None = None,
) -> Fitted:
    """Per model: pick the (view, penalty) with the lowest out-of-fold log-loss, calibrate, refit on all rows.

    ``ids``: each row's fold (default: 5 seeded folds); a row with -1 is in no fold: it only joins
    the final fit, and its out-of-fold prediction is left at 0.
    """
    n, models = y.shape
    ids = fold_ids(n, 5, 0) if ids is None else ids
    folds = int(ids.max()) + 1
    cv = ids >= 0
    order = sorted(penalties, reverse=True)  # strongest first: each warm-starts the next
    best_loss = np.full(models, np.inf)
    best: list[tuple[int, float, F64]] = [(0, order[0], np.zeros(n))] * models
    standardised = []
    for v, view in enumerate(views):
        xv = view.apply(x)
        mean = xv.mean(axis=0)
        std = xv.std(axis=0)
        std[std < 1e-8] = 1.0
        xs = (xv - mean) / std
        standardised.append((xs, mean, std))
        oof = np.zeros((len(order), n, models))
        for fold in range(folds):
            train, held = cv & (ids != fold), ids == fold
            for m in range(models):
                w: F64 | None = None
                for k, penalty in enumerate(order):
                    w = fit_logistic(xs[train], y[train, m], penalty, start=w)
                    oof[k, held, m] = xs[held] @ w[:-1] + w[-1]
        for m in range(models):
            for k, penalty in enumerate(order):
                loss = log_loss(y[cv, m], sigmoid(oof[k, cv, m]))
                if loss < best_loss[m] - 1e-9:
                    best_loss[m] = loss
                    best[m] = (v, penalty, oof[k, :, m])
    weights = np.zeros((x.shape[1], models))
    bias = np.zeros(models)
    scale = np.zeros(models)
    shift = np.zeros(models)
    calibrated = np.zeros((n, models))
    for m, (v, penalty, z) in enumerate(best):
        a, b = platt(z[cv], y[cv, m])
        scale[m], shift[m] = a, b
        calibrated[cv, m] = sigmoid(a * z[cv] + b)
        xs, mean, std = standardised[v]
        w = fit_logistic(xs, y[:, m], penalty)
        on_view = w[:-1] / std  # logit = view(x) @ on_view + intercept
        weights[:, m] = views[v].matrix @ on_view
        bias[m] = w[-1] - float(mean @ on_view) + float(views[v].offset @ on_view)
    chosen = [f"{views[v].name}, penalty {penalty:g}" for v, penalty, _ in best]
    return Fitted(weights, bias, scale, shift, chosen, calibrated)
