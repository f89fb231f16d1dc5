"""Train a student: a logistic-regression head on MiniLM vectors, tuned and calibrated on training data.

The regularisation strength is chosen by 5-fold cross-validation on the training set. The head
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
C_GRID = (1.0, 4.0, 16.0, 64.0)


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


def _train(train: Examples, encode: Encode, val: Examples | None, target: float) -> Student:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict

    counts = Counter(train.labels)
    if len(counts) < 2:
        raise DistillDataError(f"the training data has one label ({next(iter(counts))!r}); a student needs two or more")
    started = time.perf_counter()
    x = encode(train.texts)
    y = np.asarray(train.labels)
    folds = max(2, min(5, min(counts.values())))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(C_GRID)}, cv=cv, n_jobs=1)
    search.fit(x, y)
    head: LogisticRegression = search.best_estimator_
    if val is not None:
        unknown = sorted(set(val.labels) - set(counts))
        if unknown:
            raise DistillDataError(f"the validation data has labels the training data lacks: {', '.join(unknown[:5])}")
        scores = head.decision_function(encode(val.texts))
        truth = np.asarray(val.labels)
        source = "validation file"
    else:
        model = LogisticRegression(max_iter=2000, C=head.C)
        scores = cross_val_predict(model, x, y, cv=cv, method="decision_function")
        truth = y
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
        "cv_accuracy": float(search.best_score_),
        "target_accuracy": target,
        "threshold_from": source,
        "temperature": round(temperature, 4),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return Student(
        [str(c) for c in classes],
        (head.coef_ / temperature).astype(np.float32),  # calibrated: the temperature is folded into the head
        (head.intercept_ / temperature).astype(np.float32),
        threshold,
        info,
    )
