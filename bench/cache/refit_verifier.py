#!/usr/bin/env python3
"""Would refitting the verifier on a team's own pairs help? A probe on ``tokenomy cache tune``'s scores.csv.

``tokenomy cache tune --verifier shipped`` keeps the shipped verifier's coefficients and hard gates
and only chooses a new threshold; the default (``--verifier refit``) is the "gates as features"
variant below. This reads the ``scores.csv`` it writes (every pair's fold, cosine and the tuned
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
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tokenomy.cache.semantic import calibrate as cal  # noqa: E402
from tokenomy.cache.semantic.features import gate  # noqa: E402
from tokenomy.cache.semantic.tuning.refit import cross_fitted, feature_matrix  # noqa: E402
from tokenomy.cache.semantic.tuning.report import TABLE_HEADER, nested, table_row  # noqa: E402
from tokenomy.cache.semantic.verifier import COSINE_FLOOR  # noqa: E402


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
    x = feature_matrix(pairs, cosine, logit)
    floor = cosine >= COSINE_FLOOR
    shipped = np.array([float(r["decision_tuned"]) for r in rows])
    kept = cross_fitted(pairs, x[:, :-1], fold, floor & gates, opts.target)
    soft = cross_fitted(pairs, x, fold, floor, opts.target)
    print(f"{len(pairs)} pairs ({int(y.sum())} same); a gate refuses {int((floor & ~gates & y).sum())} same and "
          f"{int((floor & ~gates & ~y).sum())} different ones above the cosine floor.\n")  # fmt: skip
    print(TABLE_HEADER.replace("| model |", "| verifier | decision AUC |").replace("|---|", "|---|---|", 1))
    auc = lambda s: f"{roc_auc_score(y, np.where(np.isfinite(s), s, -1e9)):.3f}"  # noqa: E731
    rows_out = [("shipped coefficients, threshold per fold (nested)", auc(shipped),
                 asdict(nested(pairs, shipped, fold, cal.thresholds(0.0, 8.0, 0.1), opts.target)))]  # fmt: skip
    for name, (decided, estimated) in (("refitted, gates kept", kept), ("refitted, gates as features", soft)):
        rows_out.append((f"{name} (thresholds {list(estimated.thresholds)})", auc(decided), asdict(estimated)))
    for name, a, row in rows_out:
        print(table_row(f"{name} | {a}", row))


if __name__ == "__main__":
    main()
