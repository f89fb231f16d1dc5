"""Choose and fit the semantic tier's verifier by grouped, nested cross-validation; print the tables.

One command (after ``bench/cache/train_cross_encoder.py``, whose out-of-fold scores it reads)::

    .venv/bin/python bench/cache/fit_verifier.py --scores build/cross-encoder [--write]

Pairs: the LangCache pairs and the labelled STS-B train pairs (score ≥ 4 same, ≤ 2 different),
each with the out-of-fold cross-encoder logit of a model that never saw its fold, and the MiniLM
cosine. For every repeat and outer fold, each candidate matcher is fit on the other four folds,
its acceptance threshold is chosen there by inner leave-one-fold-out predictions with the
calibration rule (lowest threshold with precision ≥ 0.99 at and above it, on LangCache and STS-B
pooled), and it is then applied once to the held-out fold. Counts are pooled over folds and repeats; the interval is the
Clopper-Pearson 95 % interval of the pooled precision (repeats reuse the same pairs, so it is
optimistic by up to √repeats). STS-B dev and test are scored once by the shipped models, never
used for any choice.

``--write`` stores the winner (logistic regression over :data:`FEATURES`, fit on all pairs, its
threshold the mean over repeats of the rule's choice on that repeat's out-of-fold predictions)
as ``src/tokenomy/cache/semantic/models/verifier.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.stats import beta
from sklearn.linear_model import LogisticRegression

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.features import FEATURES, features, gate
from tokenomy.cache.semantic.verifier import COSINE_FLOOR
from tokenomy.providers.local.embeddings import MiniLMEmbedder

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.99
GRID = [round(-4 + 0.05 * i, 2) for i in range(361)]  # decision values (logits) -4 .. 14


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


def load(path: Path, cos: dict[tuple[str, str], float], repeat: int | None) -> Rows:
    rows = [r for r in read_csv(path) if repeat is None or int(r["repeat"]) == repeat]
    a = [r["sentence2"] for r in rows]  # the query: sentence2 asked after sentence1 was stored
    b = [r["sentence1"] for r in rows]
    x = np.stack([features(q, s, cos[(s, q)], float(r["score"])) for q, s, r in zip(a, b, rows, strict=True)])
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
    ce, cos = x[:, 1:2], x[:, 0:1]
    return np.hstack([x, ce * x, cos**2])


def lr_fitter(
    columns: list[str], c: float | None = 0.5, *, poly: bool = False, langcache_weight: float = 1.0
) -> Fitter:
    """Logistic regression over ``columns``; ``c=None`` chooses its strength from :data:`C_GRID` by
    leave-one-fold-out on the training folds only (the most recall at the calibration rule's threshold).
    ``poly`` adds :func:`degree2` terms (all features); ``langcache_weight`` weighs LangCache pairs in the fit."""
    idx = [FEATURES.index(col) for col in columns]

    def design(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return degree2(x) if poly else x[:, idx]

    def fit(train: Rows) -> Scorer:
        strength = c if c is not None else choose_c(train, columns)
        keep = train.gated & (train.x[:, 0] >= COSINE_FLOOR)
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


def single(column: str, gated: bool, check: bool = False) -> Fitter:
    i = FEATURES.index(column)

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
    return GRID


def choose(scores: npt.NDArray[np.float64], y: npt.NDArray[np.int64], grid: list[float]) -> float:
    """The calibration rule on out-of-fold scores; +inf (accept nothing) when no threshold qualifies."""
    points = []
    positives = int(y.sum())
    for t in grid:
        acc = scores >= t
        tp, fp = int((acc & (y == 1)).sum()), int((acc & (y == 0)).sum())
        n = tp + fp
        points.append(cal.Point(t, n, tp, fp, positives - tp, tp / n if n else None, tp / max(1, positives)))
    best = cal.recommend(points, TARGET)
    return best.threshold if best is not None else float("inf")


def nested(rows: Rows, fit: Fitter, grid: list[float], fixed: float | None) -> npt.NDArray[np.bool_]:
    """Accepted or not, for every row, each by a matcher that never saw its fold."""
    accepted = np.zeros(len(rows.y), dtype=bool)
    for k in sorted(set(rows.fold.tolist())):
        train = rows.take(rows.fold != k)
        threshold = fixed
        if threshold is None:
            inner = np.full(len(train.y), -np.inf)
            for j in sorted(set(train.fold.tolist())):
                inner[train.fold == j] = fit(train.take(train.fold != j))(train.take(train.fold == j))
            threshold = choose(inner, train.y, grid)
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


CANDIDATES: dict[str, tuple[Fitter, str | None, float | None]] = {
    "cosine ≥ 0.90 + second check (before)": (single("cosine", False, check=True), "cosine", 0.90),
    "cosine + second check, calibrated": (single("cosine", False, check=True), "cosine", None),
    "cosine alone, calibrated": (single("cosine", False), "cosine", None),
    "gates + cross-encoder logit, calibrated": (single("cross_encoder", True), None, None),
    "gates + LR(cosine, lexical), no cross-encoder": (lr_fitter([f for f in FEATURES if f != "cross_encoder"]), None,
                                                      None),
    "gates + LR(cosine, cross-encoder, lexical)": (lr_fitter(list(FEATURES)), None, None),
    "gates + LR(cosine, cross-encoder, lexical), C by inner CV": (lr_fitter(list(FEATURES), None), None, None),
    "gates + LR with degree-2 cross-encoder terms": (lr_fitter(list(FEATURES), poly=True), None, None),
    "gates + LR, LangCache pairs weighted 3x": (lr_fitter(list(FEATURES), langcache_weight=3.0), None, None),
}  # fmt: skip
WINNER = "gates + LR(cosine, cross-encoder, lexical)"  # C by inner CV lost recall (docs/semantic-cache.md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scores", type=Path, default=ROOT / "build" / "cross-encoder")
    ap.add_argument("--write", action="store_true", help="store the winner as the shipped verifier")
    opts = ap.parse_args()
    oof, held = opts.scores / "oof.csv", opts.scores / "heldout.csv"
    pairs = [(r["sentence1"], r["sentence2"]) for f in (oof, held) for r in read_csv(f)]
    cos = cosines(pairs, opts.scores / "cosines.csv")
    repeats = sorted({int(r["repeat"]) for r in read_csv(oof)})
    print("| matcher | pairs | accepted / pass | false hits / pass | precision [95 % CI] | recall [95 % CI] |")
    print("|---|---|---|---|---|---|")
    for name, (fit, column, fixed) in CANDIDATES.items():
        ys: dict[str, list[npt.NDArray[np.int64]]] = {}
        accs: dict[str, list[npt.NDArray[np.bool_]]] = {}
        for repeat in repeats:
            rows = load(oof, cos, repeat)
            acc = nested(rows, fit, grid_for(column), fixed)
            for source in ("langcache", "stsb-train"):
                m = rows.source == source
                ys.setdefault(source, []).append(rows.y[m])
                accs.setdefault(source, []).append(acc[m])
        for source in ("langcache", "stsb-train"):
            print(
                line(name, source, np.concatenate(ys[source]), np.concatenate(accs[source]), len(repeats)), flush=True
            )
    fit = CANDIDATES[WINNER][0]
    all_scores, all_labels = [], []
    for repeat in repeats:  # the threshold: the rule on out-of-fold scores of every repeat together
        rows = load(oof, cos, repeat)
        oof_scores = np.full(len(rows.y), -np.inf)
        for k in sorted(set(rows.fold.tolist())):
            oof_scores[rows.fold == k] = fit(rows.take(rows.fold != k))(rows.take(rows.fold == k))
        all_scores.append(oof_scores)
        all_labels.append(rows.y)
    sources = np.concatenate([load(oof, cos, r).source for r in repeats])
    per_repeat = [choose(sc, y, GRID) for sc, y in zip(all_scores, all_labels, strict=True)]
    threshold = round(float(np.mean(per_repeat)), 2)  # the rule is jumpy on this little data: average it
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    print("\nCurve of the shipped matcher (out-of-fold decision values, all repeats pooled):")
    print("| accept ≥ | LangCache precision | LangCache recall | LangCache accepted | STS-B precision | STS-B recall |")
    print("|---|---|---|---|---|---|")
    for t in [round(1.0 + 0.5 * i, 2) for i in range(10)]:
        cells = []
        for source in ("langcache", "stsb-train"):
            m = sources == source
            acc, y = scores[m] >= t, labels[m]
            tp, n = int((acc & (y == 1)).sum()), int(acc.sum())
            cells += [f"{tp / n:.3f}" if n else "-", f"{tp / max(1, int(y.sum())):.3f}", str(n)]
        print(f"| {t} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {cells[4]} |")
    final = fit(rows)
    heldout = load(held, cos, None)
    acc = final(heldout) >= threshold
    print(f"\nShipped verifier: threshold {threshold} (decision value), the mean of the rule's choices {per_repeat}; "
          f"regularisation C {final.params[4]} (inner cross-validation).")  # type: ignore[attr-defined]
    print("| matcher | pairs | accepted | false hits | precision [95 % CI] | recall [95 % CI] |")
    print("|---|---|---|---|---|---|")
    for source in ("stsb-dev", "stsb-test"):
        m = heldout.source == source
        print(line("shipped verifier (held-out, never tuned on)", source, heldout.y[m], acc[m], 1))
    if opts.write:
        columns, mean, scale, model, strength = final.params  # type: ignore[attr-defined]
        doc = {
            "regularisation_c": strength,
            "features": columns, "mean": mean.tolist(), "scale": scale.tolist(),
            "coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]),
            "threshold": threshold, "cosine_floor": COSINE_FLOOR, "target_precision": TARGET,
            "trained_on": "LangCache pairs + STS-B train (labelled); cross-encoder logits out-of-fold",
        }  # fmt: skip
        out = ROOT / "src" / "tokenomy" / "cache" / "semantic" / "models" / "verifier.json"
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
