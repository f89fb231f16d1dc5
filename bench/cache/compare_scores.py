"""Compare the cross-encoder's scoring variants on held-out folds, paired, without a verifier.

One command (after some fold models of ``bench/cache/train_cross_encoder.py`` are done)::

    .venv/bin/python bench/cache/compare_scores.py --scores build/cross-encoder

For the folds scored so far (``fold-R-K.csv`` or ``oof.csv``), each pair's held-out logit under four
variants of the same fold model: int8 (query, stored) — what ships —, the mean of both orders, and
the same two from the float32 model before quantization. Only pairs that pass the hard gates and
the cosine floor count (the verifier never sees the others). Prints, per pair set, each variant's
ROC AUC and its difference from the shipped variant with a 95 % interval from a bootstrap over
sentence-graph groups (paired: the same resampled pairs for both), and how far the float32 logits
lie from the int8 ones. A ranking comparison for when the full nested cross-validation
(``fit_verifier.py --levers``) cannot be run: it says whether a variant separates the pairs better,
not what recall the verifier would reach with it at precision 0.99.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.features import gate
from tokenomy.cache.semantic.verifier import COSINE_FLOOR

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {
    "int8, one order (shipped)": ("score",),
    "int8, both orders": ("score", "score_reversed"),
    "float32, one order": ("score_fp32",),
    "float32, both orders": ("score_fp32", "score_reversed_fp32"),
}


def auc(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float:
    """ROC AUC (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def read(scores: Path) -> list[dict[str, str]]:
    parts = sorted(scores.glob("fold-*-*.csv")) or [scores / "oof.csv"]
    rows: list[dict[str, str]] = []
    for part in parts:
        with open(part, encoding="utf-8", newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scores", type=Path, default=ROOT / "build" / "cross-encoder")
    ap.add_argument("--cosines", type=Path, default=ROOT / "bench" / "cache" / "cross_encoder" / "cosines.csv")
    ap.add_argument("--boot", type=int, default=2000)
    opts = ap.parse_args()
    with open(opts.cosines, encoding="utf-8", newline="") as f:
        cos = {(r["a"], r["b"]): float(r["cosine"]) for r in csv.DictReader(f)}
    rows = [r for r in read(opts.scores) if cos[(r["sentence1"], r["sentence2"])] >= COSINE_FLOOR
            and gate(r["sentence2"], r["sentence1"])]  # fmt: skip
    folds = sorted({(int(r["repeat"]), int(r["fold"])) for r in read(opts.scores)})
    print(f"folds (repeat, fold): {folds}; pairs passing the gates and the cosine floor {COSINE_FLOOR}")
    print()
    print("| pairs | variant | same / different | AUC | AUC - shipped [95 % CI] |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for source in ("langcache", "stsb-train"):
        sub = [r for r in rows if r["source"] == source]
        y = np.array([int(r["label"]) for r in sub])
        group = np.array([f"{r['repeat']}-{r['group']}" for r in sub])
        ids = np.unique(group)
        members = {g: np.flatnonzero(group == g) for g in ids}
        samples = [np.concatenate([members[g] for g in rng.choice(ids, len(ids))]) for _ in range(opts.boot)]
        values = {
            name: np.array([np.mean([float(r[c]) for c in cols]) for r in sub]) for name, cols in VARIANTS.items()
        }
        base = values["int8, one order (shipped)"]
        for name, v in values.items():
            diffs = [auc(v[s], y[s]) - auc(base[s], y[s]) for s in samples]
            lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
            delta = "—" if v is base else f"{auc(v, y) - auc(base, y):+.4f} [{lo:+.4f}, {hi:+.4f}]"
            print(f"| {source} | {name} | {int(y.sum())} / {int((y == 0).sum())} | {auc(v, y):.4f} | {delta} |")
    gap = np.array([abs(float(r["score"]) - float(r["score_fp32"])) for r in rows])
    print(f"\n|int8 - float32| logit, (query, stored): mean {gap.mean():.3f}, p99 {np.percentile(gap, 99):.3f}, "
          f"max {gap.max():.3f} over {len(gap)} pairs")  # fmt: skip


if __name__ == "__main__":
    main()
