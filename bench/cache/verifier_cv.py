"""The cross-validation machinery of ``fit_verifier.py``: pairs and their features, the candidate
fitters, the threshold rule, nested cross-validation and the table lines.

Read ``fit_verifier.py``'s docstring for the procedure; this module holds no choices of its own.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.stats import beta
from sklearn.linear_model import LogisticRegression

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.features import FEATURES, features, gate, normalized
from tokenomy.cache.semantic.verifier import COSINE_FLOOR
from tokenomy.providers.local.embeddings import MiniLMEmbedder

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.99
GRID = [round(-4 + 0.05 * i, 2) for i in range(361)]  # decision values (logits) -4 .. 14
GBM_GRID = [round(-10 + 0.05 * i, 2) for i in range(601)]  # raw scores of the tree ensembles -10 .. 20
SURFACE = ("char3_jaccard", "word_order", "wh_mismatch")
"""Extra generic features a candidate may read: character-trigram overlap, word-sequence similarity,
and whether the question words (who, when, where, why, which, what, how) differ."""
COLUMNS = (*FEATURES, *SURFACE)
"""Every feature a candidate may read: the shipped verifier's, then the extra surface features."""


_WH = frozenset({"who", "whom", "whose", "when", "where", "why", "which", "what", "how"})


def _trigrams(text: str) -> set[str]:
    padded = f" {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def surface(query: str, stored: str) -> list[float]:
    """The values named by :data:`SURFACE` for a pair (on normalised text)."""
    a, b = normalized(query), normalized(stored)
    ta, tb = _trigrams(a), _trigrams(b)
    wa, wb = a.split(), b.split()
    return [
        len(ta & tb) / max(1, len(ta | tb)),
        SequenceMatcher(None, wa, wb, autojunk=False).ratio(),
        float((_WH & set(wa)) != (_WH & set(wb))),
    ]


@dataclass
class Rows:
    """Pairs with their features, label, fold and source."""

    a: list[str]
    b: list[str]
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    fold: npt.NDArray[np.int64]
    source: npt.NDArray[np.str_]
    gated: npt.NDArray[np.bool_]

    def take(self, mask: npt.NDArray[np.bool_]) -> Rows:
        idx = np.flatnonzero(mask)
        return Rows([self.a[i] for i in idx], [self.b[i] for i in idx], self.x[idx], self.y[idx],
                    self.fold[idx], self.source[idx], self.gated[idx])  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def cosines(pairs: list[tuple[str, str]], cache: Path) -> dict[tuple[str, str], float]:
    """MiniLM cosine of each pair (kept in ``cache`` between runs)."""
    known: dict[tuple[str, str], float] = {}
    if cache.exists():
        known = {(r["a"], r["b"]): float(r["cosine"]) for r in read_csv(cache)}
    todo = [p for p in dict.fromkeys(pairs) if p not in known]
    if todo:
        model = MiniLMEmbedder()
        model.load()
        texts = list(dict.fromkeys(t for p in todo for t in p))
        vec = {}
        for i in range(0, len(texts), 64):
            for t, e in zip(texts[i : i + 64], model.embed(texts[i : i + 64]), strict=True):
                vec[t] = np.asarray(e.vector, dtype=np.float32)
        for a, b in todo:
            known[(a, b)] = float(vec[a] @ vec[b])
        with open(cache, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["a", "b", "cosine"])
            w.writerows([a, b, c] for (a, b), c in known.items())
    return known


def ce_score(row: dict[str, str], both_orders: bool, variant: str = "") -> float:
    """The cross-encoder feature of a scored pair: its logit, or the mean of both orders' logits;
    ``variant``: the column suffix of the model read (``""`` dynamic int8, ``"_fp32"`` float32 before
    quantization, ``"_w8"`` weight-only 8-bit)."""
    if both_orders:
        return (float(row["score" + variant]) + float(row["score_reversed" + variant])) / 2
    return float(row["score" + variant])


def load(path: Path, cos: dict[tuple[str, str], float], repeat: int | None, both_orders: bool = False,
         variant: str = "") -> Rows:  # fmt: skip
    rows = [r for r in read_csv(path) if repeat is None or int(r["repeat"]) == repeat]
    a = [r["sentence2"] for r in rows]  # the query: sentence2 asked after sentence1 was stored
    b = [r["sentence1"] for r in rows]
    x = np.stack([np.concatenate([features(q, s, cos[(s, q)], ce_score(r, both_orders, variant)), surface(q, s)])
                  for q, s, r in zip(a, b, rows, strict=True)])  # fmt: skip
    return Rows(
        a, b, x, np.array([int(r["label"]) for r in rows]),
        np.array([int(r.get("fold") or 0) for r in rows]), np.array([r["source"] for r in rows]),
        np.array([gate(q, s) for q, s in zip(a, b, strict=True)]),
    )  # fmt: skip


Scorer = Callable[[Rows], npt.NDArray[np.float64]]
Fitter = Callable[[Rows], Scorer]


C_GRID = (0.02, 0.05, 0.1, 0.2, 0.5)
"""Regularisation strengths the verifier chooses from by inner cross-validation."""


def degree2(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns plus the cross-encoder logit times each column and the cosine squared (x: all FEATURES)."""
    x = x[:, : len(FEATURES)]
    ce, cos = x[:, 1:2], x[:, 0:1]
    return np.hstack([x, ce * x, cos**2])


def lr_fitter(
    columns: list[str],
    c: float | None = 0.5,
    *,
    poly: bool = False,
    langcache_weight: float = 1.0,
    only: str | None = None,
) -> Fitter:
    """Logistic regression over ``columns``; ``c=None`` chooses its strength from :data:`C_GRID` by
    leave-one-fold-out on the training folds only (the most recall at the calibration rule's threshold).
    ``poly`` adds :func:`degree2` terms (all features); ``langcache_weight`` weighs LangCache pairs in the fit;
    ``only`` fits on the pairs of that source alone."""
    idx = [COLUMNS.index(col) for col in columns]

    def design(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return degree2(x) if poly else x[:, idx]

    def fit(train: Rows) -> Scorer:
        strength = c if c is not None else choose_c(train, columns)
        keep = train.gated & (train.x[:, 0] >= COSINE_FLOOR)
        if only is not None:
            keep &= train.source == only
        x, y = design(train.x[keep]), train.y[keep]
        weight = np.where(train.source[keep] == "langcache", langcache_weight, 1.0)
        mean, scale = x.mean(0), x.std(0) + 1e-9
        model = LogisticRegression(C=strength, max_iter=4000).fit((x - mean) / scale, y, sample_weight=weight)

        def score(rows: Rows) -> npt.NDArray[np.float64]:
            s = model.decision_function((design(rows.x) - mean) / scale)
            return np.where(rows.gated & (rows.x[:, 0] >= COSINE_FLOOR), s, -np.inf)

        score.params = (columns, mean, scale, model, strength)  # type: ignore[attr-defined]
        return score

    return fit


def choose_c(train: Rows, columns: list[str]) -> float:
    """The strength in :data:`C_GRID` whose out-of-fold scores (on ``train``'s folds) accept the most
    true pairs at the calibration rule's threshold."""
    best, best_tp = C_GRID[0], -1
    folds = sorted(set(train.fold.tolist()))
    for strength in C_GRID:
        scores = np.full(len(train.y), -np.inf)
        for j in folds:
            scores[train.fold == j] = lr_fitter(columns, strength)(train.take(train.fold != j))(
                train.take(train.fold == j)
            )
        threshold = choose(scores, train.y, GRID)
        tp = int(((scores >= threshold) & (train.y == 1)).sum())
        if tp > best_tp:
            best, best_tp = strength, tp
    return best


def gbm_fitter(columns: list[str], library: str) -> Fitter:
    """Gradient-boosted trees over ``columns`` (200 trees of at most 7 leaves, learning rate 0.05,
    at least 20 pairs per leaf; fixed in advance, not tuned): ``library`` is ``lightgbm`` or
    ``sklearn`` (HistGradientBoostingClassifier). The score is the ensemble's raw logit."""
    idx = [COLUMNS.index(col) for col in columns]

    def fit(train: Rows) -> Scorer:
        keep = train.gated & (train.x[:, 0] >= COSINE_FLOOR)
        x, y = train.x[keep][:, idx], train.y[keep]
        if library == "lightgbm":
            import lightgbm

            model = lightgbm.LGBMClassifier(
                n_estimators=200, num_leaves=7, learning_rate=0.05, min_child_samples=20, n_jobs=1,
                random_state=0, verbose=-1, deterministic=True, force_row_wise=True,
            ).fit(x, y)  # fmt: skip

            def raw(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
                return np.asarray(model.predict(z, raw_score=True), dtype=np.float64)
        else:
            from sklearn.ensemble import HistGradientBoostingClassifier

            model = HistGradientBoostingClassifier(
                max_iter=200, max_leaf_nodes=7, learning_rate=0.05, min_samples_leaf=20, early_stopping=False,
                random_state=0,
            ).fit(x, y)  # fmt: skip

            def raw(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
                return np.asarray(model.decision_function(z), dtype=np.float64)

        def score(rows: Rows) -> npt.NDArray[np.float64]:
            s = raw(rows.x[:, idx])
            return np.where(rows.gated & (rows.x[:, 0] >= COSINE_FLOOR), s, -np.inf)

        score.params = (columns, model, library)  # type: ignore[attr-defined]
        return score

    return fit


def single(column: str, gated: bool, check: bool = False) -> Fitter:
    i = COLUMNS.index(column)

    def fit(_train: Rows) -> Scorer:
        def score(rows: Rows) -> npt.NDArray[np.float64]:
            ok = rows.gated if gated else np.ones(len(rows.y), dtype=bool)
            if check:
                ok = ok & (rows.x[:, FEATURES.index("same_question")] > 0)
            return np.where(ok, rows.x[:, i], -np.inf)

        return score

    return fit


def grid_for(column: str | None) -> list[float]:
    if column == "cosine":
        return cal.thresholds(0.5, 0.995, 0.005)
    if column == "gbm":
        return GBM_GRID
    return GRID


def choose(
    scores: npt.NDArray[np.float64], y: npt.NDArray[np.int64], grid: list[float], min_accepted: int = 0
) -> float:
    """The calibration rule on out-of-fold scores; +inf (accept nothing) when no threshold qualifies.
    With ``min_accepted`` the precision is only required where at least that many pairs are accepted
    (above the threshold where fewer are, a single false hit decides the precision)."""
    points = []
    positives = int(y.sum())
    for t in grid:
        acc = scores >= t
        tp, fp = int((acc & (y == 1)).sum()), int((acc & (y == 0)).sum())
        n = tp + fp
        precision = tp / n if n and n >= min_accepted else None
        points.append(cal.Point(t, n, tp, fp, positives - tp, precision, tp / max(1, positives)))
    best = cal.recommend(points, TARGET)
    return best.threshold if best is not None else float("inf")


def nested(rows: Rows, fit: Fitter, grid: list[float], fixed: float | None, min_accepted: int = 0,
           calibrate_on: str | None = None) -> npt.NDArray[np.bool_]:  # fmt: skip
    """Accepted or not, for every row, each by a matcher that never saw its fold. ``calibrate_on``
    chooses the threshold on the inner out-of-fold pairs of that source alone."""
    accepted = np.zeros(len(rows.y), dtype=bool)
    for k in sorted(set(rows.fold.tolist())):
        train = rows.take(rows.fold != k)
        threshold = fixed
        if threshold is None:
            inner = np.full(len(train.y), -np.inf)
            for j in sorted(set(train.fold.tolist())):
                inner[train.fold == j] = fit(train.take(train.fold != j))(train.take(train.fold == j))
            pick = train.source == calibrate_on if calibrate_on else np.ones(len(train.y), dtype=bool)
            threshold = choose(inner[pick], train.y[pick], grid, min_accepted)
        test = rows.fold == k
        accepted[test] = fit(train)(rows.take(test)) >= threshold
    return accepted


def cp(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95 % interval of k successes in n."""
    if n == 0:
        return 0.0, 1.0
    low = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return low, high


def line(name: str, source: str, y: npt.NDArray[np.int64], acc: npt.NDArray[np.bool_], repeats: int) -> str:
    tp, fp = int((acc & (y == 1)).sum()), int((acc & (y == 0)).sum())
    pos = int((y == 1).sum())
    n = tp + fp
    lo, hi = cp(tp, n)
    rlo, rhi = cp(tp, pos)
    prec = f"{tp / n:.3f} [{lo:.3f}, {hi:.3f}]" if n else "-"
    return (f"| {name} | {source} | {n // repeats} | {fp / repeats:.1f} | {prec} | "
            f"{tp / max(1, pos):.3f} [{rlo:.3f}, {rhi:.3f}] |")  # fmt: skip
