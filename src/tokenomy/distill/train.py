"""Train a student: a logistic-regression head on MiniLM vectors, tuned and calibrated on training data.

The regularisation strength is chosen by 3-fold cross-validation on the training set. With
``lexical=True`` a second logistic-regression head on hashed n-gram TF-IDF features
(:mod:`tokenomy.distill.lexical`) is fitted on the same folds, and the two heads' log-probabilities
are blended with the weight that minimises out-of-fold log loss. The blend is calibrated by
temperature scaling and the abstention threshold is the lowest confidence at which the answered
share reaches the target accuracy, all on out-of-fold predictions (or on ``--val`` predictions,
when given), never on test data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.distill.data import Examples, check_labels
from tokenomy.distill.student import FloatArray, LexicalHead, Student

Encode = Callable[[list[str]], FloatArray]
C_GRID = (4.0, 16.0, 64.0)
LEXICAL_C = 20.0  # fixed, not searched: each lexical fit costs about a minute on BANKING77
BLEND_GRID = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6)  # weight of the lexical head's log-probabilities
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


def train_student(
    train: Examples, encode: Encode, *, val: Examples | None = None, target: float = 0.99, lexical: bool = False
) -> Student:
    """Fit the head(s), choose the threshold, and return the student (with its training figures)."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: these fits are small, and on a busy machine the thread pool's waits cost
    # 50x the work itself (measured: 0.03 s of CPU single-threaded versus 1 s with the pool).
    with threadpool_limits(1):
        return _train(train, encode, val, target, lexical)


def _log_softmax(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = scores - scores.max(axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out


def _log_loss(scores: npt.NDArray[np.float64], truth: npt.NDArray[np.intp]) -> float:
    return float(-_log_softmax(scores)[np.arange(len(truth)), truth].mean())


def _columns(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One score column per class (scikit-learn gives two-class models a single column)."""
    if scores.ndim == 1:
        return np.column_stack([np.zeros_like(scores), scores])
    return scores


Splits = list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]


def _out_of_fold(x: Any, y: npt.NDArray[np.str_], splits: Splits, c: float) -> npt.NDArray[np.float64]:
    """Each row's scores from the model fitted on the other folds."""
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(y)
    scores = np.zeros((len(y), len(classes)))
    for fit_rows, held_rows in splits:
        model = LogisticRegression(max_iter=2000, C=c).fit(x[fit_rows], y[fit_rows])
        columns = np.searchsorted(classes, model.classes_)
        held = np.full((len(held_rows), len(classes)), -1e9)  # a class missing from this fold
        held[:, columns] = _columns(model.decision_function(x[held_rows]))
        scores[held_rows] = held
    return scores


def _cross_validate(
    x: FloatArray, y: npt.NDArray[np.str_], splits: Splits
) -> tuple[float, float, npt.NDArray[np.float64]]:
    """The best C by out-of-fold accuracy, that accuracy, and its out-of-fold scores (reused to calibrate)."""
    classes = np.unique(y)
    best: tuple[float, float, npt.NDArray[np.float64]] | None = None
    for c in C_GRID:
        scores = _out_of_fold(x, y, splits, c)
        accuracy = float((classes[scores.argmax(axis=1)] == y).mean())
        if best is None or accuracy > best[1]:
            best = (c, accuracy, scores)
    assert best is not None
    return best


def _choose_blend(emb: npt.NDArray[np.float64], lex: npt.NDArray[np.float64], truth: npt.NDArray[np.intp]) -> float:
    """The lexical weight whose temperature-scaled blend has the lowest log loss on held-out scores."""
    best_loss, best_weight = np.inf, 0.0
    for weight in BLEND_GRID:
        blended = _blend(emb, lex, weight)
        loss = _log_loss(blended / fit_temperature(blended, truth), truth)
        if loss < best_loss:
            best_loss, best_weight = loss, weight
    return best_weight


def _blend(emb: npt.NDArray[np.float64], lex: npt.NDArray[np.float64], weight: float) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = (1 - weight) * _log_softmax(emb) + weight * _log_softmax(lex)
    return out


def _train(train: Examples, encode: Encode, val: Examples | None, target: float, lexical: bool) -> Student:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from tokenomy.distill import lexical as ngrams

    counts = check_labels(train, val)
    started = time.perf_counter()
    x = encode(train.texts)
    y = np.asarray(train.labels)
    folds = max(2, min(FOLDS, min(counts.values())))
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(x, y))
    best_c, cv_accuracy, oof = _cross_validate(x, y, splits)
    head = LogisticRegression(max_iter=2000, C=best_c).fit(x, y)
    classes = head.classes_
    lex_head: Any = None
    if lexical:
        columns, idf = ngrams.fit_vocabulary(train.texts)
        lex_x = ngrams.features(train.texts, columns, idf)
        lex_oof = _out_of_fold(lex_x, y, splits, LEXICAL_C)
        lex_head = LogisticRegression(max_iter=2000, C=LEXICAL_C).fit(lex_x, y)
    if val is not None:
        scores = _columns(head.decision_function(encode(val.texts)))
        lex_scores = _columns(lex_head.decision_function(ngrams.features(val.texts, columns, idf))) if lexical else None
        truth = np.asarray(val.labels)
        source = "validation file"
    else:
        scores, lex_scores, truth = oof, lex_oof if lexical else None, y
        source = f"{folds}-fold out-of-fold predictions on the training data"
    truth_index = np.searchsorted(classes, truth)
    weight = _choose_blend(scores, lex_scores, truth_index) if lex_scores is not None else 0.0
    blended = _blend(scores, lex_scores, weight) if lex_scores is not None else scores
    temperature = fit_temperature(blended, truth_index)
    probs = _softmax(blended / temperature)
    predicted = probs.argmax(axis=1)
    threshold = choose_threshold(probs.max(axis=1), predicted == truth_index, target)
    info: dict[str, Any] = {
        "trained_examples": len(train.texts),
        "c": float(head.C),
        "cv_accuracy": cv_accuracy,
        "target_accuracy": target,
        "threshold_from": source,
        "temperature": round(temperature, 4),
    }
    if lexical:
        info |= {
            "lexical_c": LEXICAL_C,
            "lexical_weight": weight,
            "lexical_columns": len(columns),
            "blend_cv_accuracy": float((predicted == truth_index).mean()) if val is None else None,
        }
    info["train_seconds"] = round(time.perf_counter() - started, 1)
    # calibrated: the blend weight and the temperature are folded into the heads' weights
    emb_scale = (1 - weight) / temperature
    weights, bias = _two_class(head.coef_, head.intercept_, len(classes))
    lex = None
    if lexical:
        lex_weights, lex_bias = _two_class(lex_head.coef_, lex_head.intercept_, len(classes))
        scale = weight / temperature
        lex = LexicalHead(columns, idf, (lex_weights * scale).astype(np.float32), (lex_bias * scale).astype(np.float32))
    return Student(
        [str(c) for c in classes],
        (weights * emb_scale).astype(np.float32),
        (bias * emb_scale).astype(np.float32),
        threshold,
        info,
        lex if weight > 0 else None,
    )


def _two_class(
    weights: npt.NDArray[np.float64], bias: npt.NDArray[np.float64], n_classes: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One weight row per class (scikit-learn keeps one row for two classes: class 1 against class 0)."""
    if n_classes == 2:
        return np.vstack([np.zeros_like(weights[0]), weights[0]]), np.array([0.0, bias[0]])
    return weights, bias
