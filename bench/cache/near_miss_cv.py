#!/usr/bin/env python3
"""Can the verifier learn near misses? Nested cross-validation with extra labelled pairs in training.

The shipped verifier is fit on LangCache and STS-B train (``fit_verifier.py``). This adds labelled
pair files (``sentence1,sentence2,label``, e.g. MRPC train pairs or Medical Question Pairs that no
model here saw) to its training pool, scores them with the shipped cross-encoder in both orders
(out of sample: it never saw them) and runs the same grouped, nested cross-validation (5 folds,
groups = connected sentences, two repeats) for three verifiers:

- the shipped recipe, trained and calibrated as shipped (the extra pairs only scored);
- the same logistic regression fit on the extra pairs too, its threshold from LangCache alone;
- the same, its threshold the lowest at which *every* training source reaches precision 0.99.

Prints precision and recall per source with Clopper-Pearson intervals::

    .venv/bin/python bench/cache/near_miss_cv.py --pairs mrpc=MRPC_TRAIN.csv mqp=MQP_TRAIN.csv

It needs ``bench/cache/cross_encoder_w8/oof.csv`` (the out-of-fold scores shipped with the repository).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))
from train_cross_encoder import groups
from verifier_cv import GRID, ROOT, Rows, choose, cosines, line, load, lr_fitter, read_csv, surface

from tokenomy.cache.semantic.cross_encoder import CrossEncoder
from tokenomy.cache.semantic.features import FEATURES, features, gate

SCORES = ROOT / "bench" / "cache" / "cross_encoder_w8"


Scored = tuple[list[tuple[str, str, int]], list[float], dict[tuple[str, str], float]]


def scored(path: Path, encoder: CrossEncoder, cos_cache: Path) -> Scored:
    """The file's pairs, the shipped cross-encoder's mean logit of both orders, and the MiniLM cosines."""
    with open(path, encoding="utf-8", newline="") as f:
        pairs = [(r["sentence1"].strip(), r["sentence2"].strip(), int(float(r["label"]))) for r in csv.DictReader(f)]
    ce: list[float] = []
    for i in range(0, len(pairs), 32):  # batches of 32 (the shipped model's logits do not depend on the batch)
        chunk = pairs[i : i + 32]
        forward = encoder.score([(b, a) for a, b, _ in chunk])  # (query, stored): the second is asked later
        backward = encoder.score([(a, b) for a, b, _ in chunk])
        ce += [(x + y) / 2 for x, y in zip(forward, backward, strict=True)]
    return pairs, ce, cosines([(a, b) for a, b, _ in pairs], cos_cache)


def extra_rows(name: str, data: Scored, seed: int) -> Rows:
    """Scored pairs as rows of the training pool, in 5 folds by group (connected sentences)."""
    pairs, ce, cos = data
    ids = groups([(a, b, 0.0) for a, b, _ in pairs])
    order = sorted(set(ids))
    random.Random(seed).shuffle(order)
    fold = {g: i % 5 for i, g in enumerate(order)}
    q, s = [b for _, b, _ in pairs], [a for a, _, _ in pairs]
    x = np.stack([np.concatenate([features(qq, ss, cos[(ss, qq)], c), surface(qq, ss)])
                  for qq, ss, c in zip(q, s, ce, strict=True)])  # fmt: skip
    return Rows(q, s, x, np.array([y for _, _, y in pairs]), np.array([fold[g] for g in ids]),
                np.array([name] * len(pairs)), np.array([gate(a, b) for a, b in zip(q, s, strict=True)]))  # fmt: skip


def joined(a: Rows, b: Rows) -> Rows:
    return Rows(a.a + b.a, a.b + b.b, np.vstack([a.x, b.x]), np.concatenate([a.y, b.y]),
                np.concatenate([a.fold, b.fold]), np.concatenate([a.source, b.source]),
                np.concatenate([a.gated, b.gated]))  # fmt: skip


def nested(rows: Rows, fit_on: npt.NDArray[np.bool_], calibrate_on: list[str]) -> npt.NDArray[np.bool_]:
    """Accepted or not for every row, by a verifier fit (on ``fit_on`` rows of the other folds) and
    calibrated (each of ``calibrate_on`` at precision 0.99, inner leave-one-fold-out) without its fold."""
    fit = lr_fitter(list(FEATURES))
    accepted = np.zeros(len(rows.y), dtype=bool)
    for k in range(5):
        train = rows.take((rows.fold != k) & fit_on)
        inner = np.full(len(train.y), -np.inf)
        for j in sorted(set(train.fold.tolist())):
            inner[train.fold == j] = fit(train.take(train.fold != j))(train.take(train.fold == j))
        threshold = max(choose(inner[train.source == s], train.y[train.source == s], GRID) for s in calibrate_on)
        accepted[rows.fold == k] = fit(train)(rows.take(rows.fold == k)) >= threshold
    return accepted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", nargs="+", required=True, metavar="NAME=FILE", help="extra labelled pair files")
    opts = ap.parse_args()
    named = []
    for item in opts.pairs:
        name, _, file = item.partition("=")
        if not file or not Path(file).is_file():
            ap.error(f"{item}: expected NAME=FILE with an existing file")
        named.append((name, Path(file)))
    encoder = CrossEncoder()
    encoder.load()
    base_cos = cosines([(r["sentence1"], r["sentence2"]) for r in read_csv(SCORES / "oof.csv")], SCORES / "cosines.csv")
    names = [n for n, _ in named]
    variants = {
        "shipped recipe (extra pairs scored, not fit)": (False, ["langcache"]),
        "fit on the extra pairs too, threshold on LangCache": (True, ["langcache"]),
        "fit on the extra pairs too, threshold: 0.99 on every source": (True, ["langcache", "stsb-train", *names]),
    }
    print("| verifier | pairs | accepted / pass | false hits / pass | precision [95 % CI] | recall [95 % CI] |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        data = {name: scored(path, encoder, Path(tmp) / f"{name}.csv") for name, path in named}
        pools = {}
        for repeat in (0, 1):
            rows = load(SCORES / "oof.csv", base_cos, repeat, True, "_w8")
            for name in names:
                rows = joined(rows, extra_rows(name, data[name], repeat))
            pools[repeat] = rows
        for title, (with_extra, calibrate_on) in variants.items():
            ys: dict[str, list[npt.NDArray[np.int64]]] = {}
            accs: dict[str, list[npt.NDArray[np.bool_]]] = {}
            for rows in pools.values():
                fit_on = np.ones(len(rows.y), dtype=bool) if with_extra else ~np.isin(rows.source, names)
                acc = nested(rows, fit_on, calibrate_on)
                for source in ["langcache", "stsb-train", *names]:
                    ys.setdefault(source, []).append(rows.y[rows.source == source])
                    accs.setdefault(source, []).append(acc[rows.source == source])
            for source in ys:
                print(line(title, source, np.concatenate(ys[source]), np.concatenate(accs[source]), 2), flush=True)


if __name__ == "__main__":
    main()
