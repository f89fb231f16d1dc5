#!/usr/bin/env python3
"""Labelled question pairs from an intent-labelled question set, near misses included.

Each question is paired with its ``--neighbours`` nearest other questions by MiniLM cosine; a pair
is labelled 1 when both carry the same intent, else 0. In a set whose intents are fine-grained
enough that one intent gets one answer (BANKING77: 77 online-banking intents), that is "the same
answer would do", and the nearest questions of another intent are the near misses a semantic
cache must refuse ("my card hasn't arrived" against "how long does a card take to arrive")::

    .venv/bin/python bench/cache/intent_pairs.py ../shared/data/banking77/train.csv.gz \\
        --out /tmp/banking77-train-pairs.csv [--balance]

Writes ``sentence1,sentence2,label`` (what ``near_miss_training.py --near-misses`` and
``end_to_end.py --pairs`` read) and prints how many pairs of each label.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tokenomy.cache.semantic.tuning.intents import intent_pairs, read_questions  # noqa: E402
from tokenomy.cache.semantic.tuning.intents import neighbour_pairs as nearest  # noqa: E402


def questions(path: Path, label: str = "") -> dict[str, str]:
    """The distinct ``text`` column of a CSV file, each with its ``label`` column (see ``read_questions``)."""
    return read_questions(path, label)


def neighbour_pairs(texts: list[str], k: int) -> list[tuple[int, int]]:
    """Index pairs of each text with its ``k`` nearest others by MiniLM cosine, each unordered pair once."""
    from tokenomy.cache.cli import embedder

    embed = embedder()
    vectors = np.concatenate([embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    return nearest(vectors, k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path, help="CSV with a text and an intent column (.gz too)")
    ap.add_argument("--intent", default="category", help="the intent column (default: category)")
    ap.add_argument("--neighbours", type=int, default=2, help="pairs per question")
    ap.add_argument("--balance", action="store_true", help="keep as many same-intent pairs as others (seed 0)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        labelled = questions(args.source, args.intent)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        ap.error(str(exc))
    texts = list(labelled)
    if len(texts) <= args.neighbours:
        ap.error(f"{args.source}: {len(texts)} distinct questions, need more than --neighbours {args.neighbours}")
    from tokenomy.cache.cli import embedder

    embed = embedder()
    vectors = np.concatenate([embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    pairs = intent_pairs(labelled, vectors, args.neighbours, args.balance)
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        writer.writerows(pairs)
    same = sum(y for *_, y in pairs)
    print(f"{len(texts)} questions, {len(pairs)} pairs: {same} same intent, {len(pairs) - same} not -> {args.out}")


if __name__ == "__main__":
    main()
