#!/usr/bin/env python3
"""Would refitting the verifier on a team's own pairs help? A probe on ``tokenomy cache tune``'s scores.csv.

``tokenomy cache tune`` keeps the shipped verifier's coefficients and hard gates and only chooses a
new threshold. This reads the ``scores.csv`` it writes (every pair's fold, cosine and the tuned
model's out-of-fold logits) and, fold by fold, fits the verifier's logistic regression on the other
folds' pairs and applies it to the held-out fold, in two variants:

- **gates kept**: pairs a hard gate refuses stay refused (as served); the regression is fitted on the rest;
- **gates as features**: no hard gate; the regression sees the gate's verdict as one more feature.

The threshold for each fold is chosen, with ``tokenomy cache calibrate``'s rule, on the other folds'
decision values under the regression fitted on them. Prints the decision AUC (all folds pooled) and
precision and recall at the target, against the shipped coefficients::

    .venv/bin/python bench/cache/refit_verifier.py OUT/scores.csv [--target 0.99]
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tokenomy.cache.semantic import calibrate as cal  # noqa: E402
from tokenomy.cache.semantic.features import features, gate  # noqa: E402
from tokenomy.cache.semantic.tuning.report import TABLE_HEADER, estimate, nested, table_row  # noqa: E402
from tokenomy.cache.semantic.verifier import COSINE_FLOOR  # noqa: E402

GRID = cal.thresholds(-8.0, 8.0, 0.1)


def refit(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.bool_], fold: npt.NDArray[np.int64], usable: npt.NDArray[np.bool_],
    pairs: list[cal.Pair], target: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], list[float | None]]:  # fmt: skip
    """Out-of-fold decision values of a regression fitted without each fold (-inf where not ``usable``),
    whether each pair is accepted at its fold's threshold, and the thresholds."""
    out = np.full(len(y), -np.inf)
    accepted = np.zeros(len(y), dtype=bool)
    chosen: list[float | None] = []
    for k in sorted(set(fold.tolist())):
        train, held = usable & (fold != k), usable & (fold == k)
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(C=0.5, max_iter=1000).fit(scaler.transform(x[train]), y[train])
        inside = np.full(len(y), -np.inf)
        inside[train] = model.decision_function(scaler.transform(x[train]))
        rest = np.flatnonzero(fold != k).tolist()
        point = cal.recommend(cal.curve([pairs[i] for i in rest], inside[rest], False, GRID), target)
        chosen.append(None if point is None else point.threshold)
        if held.any():
            out[held] = model.decision_function(scaler.transform(x[held]))
            if point is not None:
                accepted[held] = out[held] >= point.threshold
    return out, accepted, chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scores", type=Path, help="scores.csv written by tokenomy cache tune")
    ap.add_argument("--target", type=float, default=0.99)
    opts = ap.parse_args()
    with open(opts.scores, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    pairs = [cal.Pair(r["sentence1"], r["sentence2"], int(r["label"])) for r in rows]
    y = np.array([p.label for p in pairs], dtype=bool)
    fold = np.array([int(r["fold"]) for r in rows])
    cosine = np.array([float(r["cosine"]) for r in rows])
    logit = np.array([(float(r["logit_forward"]) + float(r["logit_backward"])) / 2 for r in rows])
    gates = np.array([gate(p.b, p.a) for p in pairs])
    x = np.stack([features(p.b, p.a, float(c), float(z)) for p, c, z in zip(pairs, cosine, logit, strict=True)])
    floor = cosine >= COSINE_FLOOR
    shipped = np.array([float(r["decision_tuned"]) for r in rows])
    kept = refit(x, y, fold, floor & gates, pairs, opts.target)
    soft = refit(np.column_stack([x, gates]), y, fold, floor, pairs, opts.target)
    print(f"{len(pairs)} pairs ({int(y.sum())} same); a gate refuses {int((floor & ~gates & y).sum())} same and "
          f"{int((floor & ~gates & ~y).sum())} different ones above the cosine floor.\n")  # fmt: skip
    print(TABLE_HEADER.replace("| model |", "| verifier | decision AUC |").replace("|---|", "|---|---|", 1))
    auc = lambda s: f"{roc_auc_score(y, np.where(np.isfinite(s), s, -1e9)):.3f}"  # noqa: E731
    rows_out = [("shipped coefficients, threshold per fold (nested)", auc(shipped),
                 asdict(nested(pairs, shipped, fold, cal.thresholds(0.0, 8.0, 0.1), opts.target)))]  # fmt: skip
    for name, (decided, accepted, thresholds) in (
        ("refitted, gates kept", kept),
        ("refitted, gates as features", soft),
    ):
        rows_out.append((f"{name} (thresholds {thresholds})", auc(decided), asdict(estimate(accepted, y))))
    for name, a, row in rows_out:
        print(table_row(f"{name} | {a}", row))


if __name__ == "__main__":
    main()
