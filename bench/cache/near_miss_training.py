#!/usr/bin/env python3
"""One probe model of a change to the cross-encoder's recipe: near misses in training, fewer layers.

Trains one model the way ``train_cross_encoder.py`` trains the fold model of repeat 0, fold 0
(STS-B train and LangCache without their fold 0, same seeds), changed by ``--near-misses FILE`` (one
more stage between them: one epoch of those labelled pairs, hard targets 0/1) and/or ``--layers N``
(only the first N of MiniLM's 6 transformer layers: a cheaper model to read; with ``--distill``
trained on the probabilities of a full-depth model trained first, instead of on the labels; with
``--unlabelled FILE`` also, first, on the teacher's probabilities for pairs of questions from FILE and
their ``--neighbours`` nearest others by MiniLM cosine, pairs no label covers) and/or ``--sts-target
strict`` (STS-B's 4-5 taught as the same, 3 and below as different, as ``train_cross_encoder.py``
can). Then scores, in both orders with the weight-only 8-bit export (the shipped encoding), the
LangCache and labelled STS-B train pairs of fold 0 and every ``--heldout`` file, and compares the
logit (mean of both orders) with a baseline: for fold 0 the shipped fold model's out-of-fold scores
(``cross_encoder_w8/fold-0-0.csv``), for the other files the shipped cross-encoder. Prints the AUC
and the precision at a few recalls, each before -> after, and what a pair costs each model
(float32 arithmetic, one thread, both orders as one batch). Without any change it trains the
shipped recipe's fold model 0/0 again: the baseline for held-out files, apart from what the
shipped model's extra training pairs do::

    .venv/bin/python bench/cache/near_miss_training.py --near-misses MRPC_TRAIN.csv \\
        --heldout mrpc-test=MRPC_TEST.csv mqp=MQP.csv
    .venv/bin/python bench/cache/near_miss_training.py --layers 3
    .venv/bin/python bench/cache/near_miss_training.py --layers 3 --distill \\
        --unlabelled ../shared/data/banking77/train.csv.gz

Needs the training extras of ``train_cross_encoder.py`` (torch CPU build, transformers, onnx). A
probe, not a shipping procedure: a model that ships needs all the fold models and the verifier's
nested cross-validation (docs/semantic-cache.md).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from sklearn.metrics import roc_auc_score
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).parent))
import intent_pairs
import train_cross_encoder as tce

from tokenomy.cache.semantic.cross_encoder import CrossEncoder, encode_pairs
from tokenomy.cache.semantic.float_cross_encoder import float32_model

RECALLS = (0.1, 0.2, 0.3, 0.5)
ROOT = Path(__file__).resolve().parents[2]


def labelled(path: Path) -> list[tuple[str, str, float]]:
    with open(path, encoding="utf-8", newline="") as f:
        return [(r["sentence1"].strip(), r["sentence2"].strip(), float(r["label"])) for r in csv.DictReader(f)]


def precision_at(y: npt.NDArray[np.int64], s: npt.NDArray[np.float64], recall: float) -> float:
    """Precision of the top-scored pairs that reach ``recall``."""
    hits = np.cumsum(y[np.argsort(-s)])
    k = min(int(np.searchsorted(hits, recall * y.sum())), len(y) - 1)
    return float(hits[k] / (k + 1))


def compare(name: str, y: list[int], before: list[float], after: list[float]) -> str:
    yy, b, a = np.array(y), np.array(before), np.array(after)
    cells = [f"{roc_auc_score(yy, b):.3f} -> {roc_auc_score(yy, a):.3f}"]
    cells += [f"{precision_at(yy, b, r):.3f} -> {precision_at(yy, a, r):.3f}" for r in RECALLS]
    return f"| {name} | {len(y)} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--near-misses", type=Path, help="labelled pairs for an extra training stage")
    ap.add_argument("--layers", type=int, default=0, help="keep only the first N transformer layers (0: all)")
    ap.add_argument("--distill", action="store_true", help="with --layers: learn a full-depth teacher's probabilities")
    ap.add_argument(
        "--unlabelled",
        type=Path,
        help="with --distill: questions (CSV, column text; .gz too) paired with their "
        "nearest neighbours and scored by the teacher, a first stage for the student",
    )
    ap.add_argument("--neighbours", type=int, default=2, help="with --unlabelled: pairs per question")
    ap.add_argument(
        "--sts-target", choices=("soft", "strict"), default="soft",
        help="STS-B targets: score/5 (soft, shipped) or min(1, max(0, score - 3)) (strict: only 4-5 the same)",
    )  # fmt: skip
    ap.add_argument("--heldout", nargs="+", default=[], metavar="NAME=FILE", help="labelled pairs to score")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--threads", type=int, default=2)
    opts = ap.parse_args()
    if opts.unlabelled and not opts.distill:
        ap.error("--unlabelled needs --distill (its pairs are scored by the teacher)")
    if opts.unlabelled:  # checked before anything trains
        try:
            unlabelled = list(intent_pairs.questions(opts.unlabelled))
        except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
            ap.error(str(exc))
        if len(unlabelled) <= opts.neighbours:
            ap.error(f"{opts.unlabelled}: {len(unlabelled)} distinct questions, need more than --neighbours")
    heldout = [(n, Path(f)) for n, _, f in (item.partition("=") for item in opts.heldout)]
    for name, path in heldout:
        if not name or not path.is_file():
            ap.error(f"--heldout {name}={path}: expected NAME=FILE with an existing file")
    torch.set_num_threads(opts.threads)
    base = tce.base_dir(None)
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(tce.MAX_LEN)
    lc, sts = tce.read_langcache(opts.data), tce.read_stsb(opts.data / "stsb" / "sts-train.csv")
    lc_fold, sts_fold = tce.fold_of(tce.groups(lc), 1000), tce.fold_of(tce.groups(sts), 2000)  # repeat 0
    stages = [
        ([(a, b, tce.sts_target(s, opts.sts_target)) for (a, b, s), f in zip(sts, sts_fold, strict=True) if f != 0], 1),
        *([(labelled(opts.near_misses), 1)] if opts.near_misses else []),
        ([p for p, f in zip(lc, lc_fold, strict=True) if f != 0], 3),
    ]
    started = time.time()
    if opts.distill:  # a full-depth teacher first; the smaller model learns its probabilities
        teacher = tce.train(base, tok, stages, "cpu", seed=0)
        stages = [([(a, b, y) for (a, b, _), y in zip(pairs, taught(teacher, tok, pairs), strict=True)], epochs)
                  for pairs, epochs in stages]  # fmt: skip
        if opts.unlabelled:  # more pairs than the labels have, the teacher's probabilities as targets
            near = intent_pairs.neighbour_pairs(unlabelled, opts.neighbours)
            extra = [(unlabelled[i], unlabelled[j], 0.0) for i, j in near]
            stages.insert(0, ([(a, b, y) for (a, b, _), y in zip(extra, taught(teacher, tok, extra), strict=True)], 1))
            print(f"{len(extra)} unlabelled pairs scored by the teacher", flush=True)
        print(f"teacher trained in {time.time() - started:.0f} s", flush=True)
    model = tce.train(base, tok, stages, "cpu", seed=0, layers=opts.layers)
    print(f"trained in {time.time() - started:.0f} s on {opts.threads} threads", flush=True)
    shipped = CrossEncoder()
    shipped.load()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = tce.export_int8(model, Path(tmp) / "probe.int8.onnx", keep_fp32=True)
        w8 = Path(tmp) / "probe.w8.onnx"
        tce.export_w8(fp32, w8)

        def mean_logit(pairs: list[tuple[str, str, float]]) -> list[float]:
            forward = tce.score(w8, tok, [(b, a) for a, b, _ in pairs])
            backward = tce.score(w8, tok, [(a, b) for a, b, _ in pairs])
            return [(x + y) / 2 for x, y in zip(forward, backward, strict=True)]

        rows = []
        oof = tce.read_rows(ROOT / "bench" / "cache" / "cross_encoder_w8" / "fold-0-0.csv")
        for source, pairs, folds in (("langcache", lc, lc_fold), ("stsb-train", sts, sts_fold)):
            fold0 = {(r["sentence1"], r["sentence2"]): r for r in oof if r["source"] == source}
            held = [(a, b, float(fold0[(a, b)]["label"])) for (a, b, _), f in zip(pairs, folds, strict=True)
                    if f == 0 and (a, b) in fold0]  # fmt: skip
            before = [
                (float(fold0[(a, b)]["score_w8"]) + float(fold0[(a, b)]["score_reversed_w8"])) / 2 for a, b, _ in held
            ]
            rows.append(compare(f"{source} fold 0 (baseline: its fold model)", [int(y) for *_, y in held], before,
                                mean_logit(held)))  # fmt: skip
        for name, path in heldout:
            pairs = labelled(path)
            before = []
            for i in range(0, len(pairs), 32):  # the shipped model's logits do not depend on the batch
                chunk = pairs[i : i + 32]
                forward, backward = (
                    shipped.score([(b, a) for a, b, _ in chunk]),
                    shipped.score([(a, b) for a, b, _ in chunk]),
                )
                before += [(x + y) / 2 for x, y in zip(forward, backward, strict=True)]
            rows.append(compare(f"{name} (baseline: the shipped model)", [int(y) for *_, y in pairs], before,
                                mean_logit(pairs)))  # fmt: skip
        shipped32, probe32 = CrossEncoder(arithmetic="float32"), CrossEncoder(float32_model(w8, Path(tmp)))
        costs = [(name, cost(model, [(a, b) for a, b, _ in lc[:200]])) for name, model in
                 (("the shipped model, float32", shipped32), ("this probe, float32", probe32))]  # fmt: skip
    print("| pairs | n | AUC | " + " | ".join(f"precision at recall {r}" for r in RECALLS) + " |")
    print("|---|---|---|" + "---|" * len(RECALLS))
    print("\n".join(rows))
    print("\n| model | thread CPU ms per pair, both orders in one batch: p50 / p99 |\n|---|---|")
    print("\n".join(f"| {name} | {p50:.2f} / {p99:.2f} |" for name, (p50, p99) in costs))


def taught(teacher: torch.nn.Module, tok: Tokenizer, pairs: list[tuple[str, str, float]]) -> list[float]:
    """The teacher's probability of "same question" for each pair, the mean over both orders."""
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, len(pairs), 64):
            chunk = pairs[i : i + 64]
            both = [(a, b) for a, b, _ in chunk] + [(b, a) for a, b, _ in chunk]
            ids, mask = encode_pairs(tok, both)
            p = torch.sigmoid(teacher(torch.from_numpy(ids), torch.from_numpy(mask))).numpy()
            out += [float(x + y) / 2 for x, y in zip(p[: len(chunk)], p[len(chunk) :], strict=True)]
    return out


def cost(model: CrossEncoder, pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """Thread CPU ms to score each pair in both orders (one batch, one thread, as a lookup does)."""
    model.load()
    for pair in pairs[:20]:  # warm-up
        model.score([pair, pair[::-1]])
    spent = []
    for a, b in pairs:
        started = time.thread_time()
        model.score([(a, b), (b, a)])
        spent.append(1000 * (time.thread_time() - started))
    return float(np.percentile(spent, 50)), float(np.percentile(spent, 99))


if __name__ == "__main__":
    main()
