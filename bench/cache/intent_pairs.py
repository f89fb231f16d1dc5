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
import gzip
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def questions(path: Path, label: str = "") -> dict[str, str]:
    """The distinct ``text`` column of a CSV file (gzipped where the name ends in .gz), each with
    its ``label`` column ("" without one); a text listed under two labels is dropped."""
    out: dict[str, str] = {}
    clash: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("text", label) if c and c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no {' or '.join(missing)} column (it has: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            text, intent = row["text"].strip(), row.get(label, "") if label else ""
            if text and out.setdefault(text, intent) != intent:
                clash.add(text)
    return {t: i for t, i in sorted(out.items()) if t not in clash}


def neighbour_pairs(texts: list[str], k: int) -> list[tuple[int, int]]:
    """Index pairs of each text with its ``k`` nearest others by MiniLM cosine, each unordered pair once."""
    from tokenomy.providers.local.embeddings import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    embedder.load()
    vectors = np.stack([e.vector for i in range(0, len(texts), 256) for e in embedder.embed(texts[i : i + 256])])
    seen: set[tuple[int, int]] = set()
    for start in range(0, len(texts), 1024):
        sims = vectors[start : start + 1024] @ vectors.T
        for row, i in enumerate(range(start, min(start + 1024, len(texts)))):
            sims[row, i] = -2.0
            for j in np.argpartition(-sims[row], k)[:k]:
                seen.add((min(i, int(j)), max(i, int(j))))
    return sorted(seen)


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
    pairs = neighbour_pairs(texts, args.neighbours)
    if args.balance:  # all pairs of the rarer label, an equal random sample of the other
        same = [p for p in pairs if labelled[texts[p[0]]] == labelled[texts[p[1]]]]
        other = [p for p in pairs if labelled[texts[p[0]]] != labelled[texts[p[1]]]]
        few, many = sorted((same, other), key=len)
        pairs = sorted(few + random.Random(0).sample(many, len(few)))
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        for i, j in pairs:
            writer.writerow([texts[i], texts[j], int(labelled[texts[i]] == labelled[texts[j]])])
    same = sum(labelled[texts[i]] == labelled[texts[j]] for i, j in pairs)
    print(f"{len(texts)} questions, {len(pairs)} pairs: {same} same intent, {len(pairs) - same} not -> {args.out}")


if __name__ == "__main__":
    main()
