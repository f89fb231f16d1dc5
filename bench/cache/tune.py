#!/usr/bin/env python3
"""``tokenomy cache tune`` on BANKING77: cross-validated on its training questions, measured on its test split.

Builds labelled pairs from BANKING77's intent-labelled training questions (each with its 2 nearest
others by MiniLM cosine, 1 = same intent, balanced: ``tokenomy cache tune --intents``), tunes the
shipped cross-encoder on them (cross-validation, threshold, final model) and then measures the
shipped and the tuned matcher, each at its own threshold, on pairs it never saw:

- BANKING77 test questions paired the same way (pairs sharing a question text with a training pair
  left out), the domain the model was tuned for;
- the public LangCache pairs and STS-B dev (labelled part), to show what tuning costs elsewhere.

Also writes ``test-pairs.csv`` to ``--out`` for the gateway run (``end_to_end.py --pairs
OUT/test-pairs.csv [--tuned OUT]``)::

    .venv/bin/python bench/cache/tune.py --out build/tune-banking77 [--epochs 2] [--folds 5] [--threads 1]

Needs the ``distill`` extra (PyTorch CPU build, transformers).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tokenomy.cache.cli import embedder  # noqa: E402
from tokenomy.cache.semantic.calibrate import Pair, load_pairs, similarities  # noqa: E402
from tokenomy.cache.semantic.cross_encoder import default_model_path  # noqa: E402
from tokenomy.cache.semantic.tuning import tune as t  # noqa: E402
from tokenomy.cache.semantic.tuning.intents import intent_pairs, read_questions  # noqa: E402
from tokenomy.cache.semantic.tuning.report import TABLE_HEADER, estimate, table_row  # noqa: E402
from tokenomy.cache.semantic.verifier import Verifier  # noqa: E402


def main() -> None:
    data = ROOT.parent / "shared" / "data"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=Path, default=data / "banking77" / "train.csv.gz")
    ap.add_argument("--test", type=Path, default=data / "banking77" / "test.csv")
    ap.add_argument("--intent-column", default="category")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=t.TuneSettings().epochs)
    ap.add_argument("--learning-rate", type=float, default=t.TuneSettings().learning_rate)
    ap.add_argument("--verifier", choices=["refit", "shipped"], default="refit")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, default=data, help="the shared data (LangCache, STS-B)")
    opts = ap.parse_args()
    try:
        train_q, test_q = (read_questions(p, opts.intent_column) for p in (opts.train, opts.test))
    except (OSError, ValueError, csv.Error) as exc:
        ap.error(str(exc))
    embed = embedder()
    train = [Pair(a, b, y) for a, b, y in intent_pairs(train_q, embed(list(train_q)))]
    seen = {q for p in train for q in (p.a, p.b)}
    test = [Pair(a, b, y) for a, b, y in intent_pairs(test_q, embed(list(test_q))) if a not in seen and b not in seen]
    opts.out.mkdir(parents=True, exist_ok=True)
    with open(opts.out / "test-pairs.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        writer.writerows([p.a, p.b, p.label] for p in test)
    settings = t.TuneSettings(
        epochs=opts.epochs, learning_rate=opts.learning_rate, folds=opts.folds, threads=opts.threads,
        verifier=opts.verifier,
    )  # fmt: skip
    started = time.perf_counter()
    report = t.tune(train, opts.out, embed, settings, progress=lambda line: print(line, file=sys.stderr, flush=True))
    spent = time.perf_counter() - started
    print(f"Tuned on {len(train)} BANKING77 training pairs ({report['positives']} same intent), {opts.folds} folds, "
          f"{opts.epochs} epochs, learning rate {opts.learning_rate}, verifier {opts.verifier}, "
          f"{opts.threads} PyTorch thread(s): {spent:.0f} s in all.\n")  # fmt: skip
    print("Cross-validation on the training pairs (out of fold; the threshold chosen without each fold):\n")
    print("AUC: " + ", ".join(f"{name} {auc}" for name, auc in report["auc"].items()) + "\n")
    print(TABLE_HEADER)
    for name, row in report["models"].items():
        print(table_row(name, row))
    if not report["written"]:
        print(f"\nNo model written: {report['not_written_because']}.")
        return
    sets = {
        f"BANKING77 test (unseen questions, {len(test)} pairs)": test,
        "LangCache public (off-domain)": load_pairs(opts.data / "langcache_query_pairs" / "pairs.csv"),
        "STS-B dev, labelled part (off-domain)": load_pairs(opts.data / "stsb" / "sts-dev.csv"),
    }
    shipped = (default_model_path(), Verifier.load())
    tuned = (opts.out / t.MODEL_FILE, Verifier.load(opts.out / t.VERIFIER_FILE))
    print("\nEach model at its own threshold (shipped 3.88, tuned: chosen out of fold above):\n")
    print(TABLE_HEADER.replace("| model |", "| pairs | model |").replace("|---|", "|---|---|", 1))
    for name, pairs in sets.items():
        cosines = similarities(embed, pairs)
        labels = np.array([p.label for p in pairs], dtype=bool)
        for model, (path, verifier) in (("shipped", shipped), ("tuned", tuned)):
            decided = t.decisions(verifier, pairs, cosines, *t.logits(path, pairs))
            row = asdict(estimate(decided >= verifier.threshold, labels))
            print(table_row(f"{name} | {model} (threshold {verifier.threshold})", row))


if __name__ == "__main__":
    main()
