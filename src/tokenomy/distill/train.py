"""Train a student: a logistic-regression head on MiniLM vectors, tuned and calibrated on training data.

The regularisation strength is chosen by 3-fold cross-validation on the training set. The head
is calibrated by temperature scaling and the abstention threshold is the lowest confidence at
which the answered share reaches the target accuracy, both on out-of-fold predictions (or on
``--val`` predictions, when given), never on test data.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tokenomy.distill.data import DistillDataError, Examples
from tokenomy.distill.student import FloatArray, Student

Encode = Callable[[list[str]], FloatArray]
C_GRID = (4.0, 16.0, 64.0)
FOLDS = 3


def choose_threshold(confidence: npt.NDArray[np.float64], right: npt.NDArray[np.bool_], target: float) -> float:
    """The lowest threshold whose answered predictions are at least ``target`` accurate (1.01: abstain always)."""
    order = np.argsort(-confidence)
    hits = np.cumsum(right[order])
    accuracy = hits / np.arange(1, len(order) + 1)
    ok = np.nonzero(accuracy >= target)[0]
    if len(ok) == 0:
        return 1.01
    k = int(ok.max())
    return float(confidence[order][k])


def _softmax(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return out


def fit_temperature(scores: npt.NDArray[np.float64], truth: npt.NDArray[np.intp]) -> float:
    """Temperature scaling: the divisor of the head's scores that minimises held-out log loss.

    A regularised head is under-confident; after scaling, a confidence of 0.9 means about nine
    answers in ten are right, so a cascade's ``confidence`` threshold means what it says.
    """
    from scipy.optimize import minimize_scalar

    def loss(t: float) -> float:
        probs = _softmax(scores / t)
        return float(-np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0)).mean())

    result = minimize_scalar(loss, bounds=(0.02, 20.0), method="bounded")
    return float(result.x)


def train_student(train: Examples, encode: Encode, *, val: Examples | None = None, target: float = 0.99) -> Student:
    """Fit the head, choose the threshold, and return the student (with its training figures)."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: these fits are small, and on a busy machine the thread pool's waits cost
    # 50x the work itself (measured: 0.03 s of CPU single-threaded versus 1 s with the pool).
    with threadpool_limits(1):
        return _train(train, encode, val, target)


def _columns(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One score column per class (scikit-learn gives two-class models a single column)."""
    if scores.ndim == 1:
        return np.column_stack([np.zeros_like(scores), scores])
    return scores


def _cross_validate(x: FloatArray, y: npt.NDArray[np.str_], folds: int) -> tuple[float, float, npt.NDArray[np.float64]]:
    """The best C by out-of-fold accuracy, that accuracy, and its out-of-fold scores (reused to calibrate)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(x, y))
    classes = np.unique(y)
    best: tuple[float, float, npt.NDArray[np.float64]] | None = None
    for c in C_GRID:
        scores = np.zeros((len(y), len(classes)))
        for fit_rows, held_rows in splits:
            model = LogisticRegression(max_iter=2000, C=c).fit(x[fit_rows], y[fit_rows])
            columns = np.searchsorted(classes, model.classes_)
            held = np.full((len(held_rows), len(classes)), -1e9)  # a class missing from this fold
            held[:, columns] = _columns(model.decision_function(x[held_rows]))
            scores[held_rows] = held
        accuracy = float((classes[scores.argmax(axis=1)] == y).mean())
        if best is None or accuracy > best[1]:
            best = (c, accuracy, scores)
    assert best is not None
    return best


def _train(train: Examples, encode: Encode, val: Examples | None, target: float) -> Student:
    from sklearn.linear_model import LogisticRegression

    counts = Counter(train.labels)
    if len(counts) < 2:
        raise DistillDataError(f"the training data has one label ({next(iter(counts))!r}); a student needs two or more")
    if val is not None:
        unknown = sorted(set(val.labels) - set(counts))
        if unknown:
            raise DistillDataError(f"the validation data has labels the training data lacks: {', '.join(unknown[:5])}")
    started = time.perf_counter()
    x = encode(train.texts)
    y = np.asarray(train.labels)
    folds = max(2, min(FOLDS, min(counts.values())))
    best_c, cv_accuracy, oof = _cross_validate(x, y, folds)
    head = LogisticRegression(max_iter=2000, C=best_c).fit(x, y)
    if val is not None:
        scores = _columns(head.decision_function(encode(val.texts)))
        truth = np.asarray(val.labels)
        source = "validation file"
    else:
        scores, truth = oof, y
        source = f"{folds}-fold out-of-fold predictions on the training data"
    classes = head.classes_
    truth_index = np.searchsorted(classes, truth)
    temperature = fit_temperature(scores, truth_index)
    probs = _softmax(scores / temperature)
    predicted = probs.argmax(axis=1)
    threshold = choose_threshold(probs.max(axis=1), predicted == truth_index, target)
    info = {
        "trained_examples": len(train.texts),
        "c": float(head.C),
        "cv_accuracy": cv_accuracy,
        "target_accuracy": target,
        "threshold_from": source,
        "temperature": round(temperature, 4),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    weights, bias = head.coef_, head.intercept_
    if len(classes) == 2:  # scikit-learn keeps one score: class 1 against class 0
        weights = np.vstack([np.zeros_like(weights[0]), weights[0]])
        bias = np.array([0.0, bias[0]])
    return Student(
        [str(c) for c in classes],
        (weights / temperature).astype(np.float32),  # calibrated: the temperature is folded into the head
        (bias / temperature).astype(np.float32),
        threshold,
        info,
    )
