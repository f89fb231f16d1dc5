"""Labelled question pairs from intent-labelled questions, near misses included.

Each question is paired with its ``k`` nearest other questions by embedding cosine; a pair is
labelled 1 when both carry the same intent, else 0. Where intents are fine enough that one intent
gets one answer (BANKING77's 77 online-banking intents), that label is "the same answer would do",
and the nearest questions of another intent are the near misses a semantic cache must refuse ("my
card hasn't arrived" against "how long does a card take to arrive").
"""

from __future__ import annotations

import csv
import gzip
import random
from pathlib import Path

import numpy as np
import numpy.typing as npt


def read_questions(path: Path, label: str = "") -> dict[str, str]:
    """The distinct ``text`` column of a CSV file (gzipped where the name ends in .gz), each with its
    ``label`` column ("" without one); a text listed under two labels is dropped. Raises ``ValueError``
    when a column is missing."""
    out: dict[str, str] = {}
    clash: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("text", label) if c and c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no {' or '.join(missing)} column (it has: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            text, intent = (row["text"] or "").strip(), (row.get(label) or "") if label else ""
            if text and out.setdefault(text, intent) != intent:
                clash.add(text)
    return {t: i for t, i in sorted(out.items()) if t not in clash}


def neighbour_pairs(vectors: npt.NDArray[np.float32], k: int) -> list[tuple[int, int]]:
    """Index pairs of each row of ``vectors`` (unit length) with its ``k`` nearest others by cosine,
    each unordered pair once, sorted."""
    seen: set[tuple[int, int]] = set()
    n = len(vectors)
    k = min(k, n - 1)
    if k <= 0:
        return []
    for start in range(0, n, 1024):
        sims = vectors[start : start + 1024] @ vectors.T
        for row, i in enumerate(range(start, min(start + 1024, n))):
            sims[row, i] = -2.0
            for j in np.argpartition(-sims[row], k - 1)[:k]:
                seen.add((min(i, int(j)), max(i, int(j))))
    return sorted(seen)


def intent_pairs(
    labelled: dict[str, str], vectors: npt.NDArray[np.float32], k: int = 2, balance: bool = True, seed: int = 0
) -> list[tuple[str, str, int]]:
    """(question, question, same intent) for each question and its ``k`` nearest others (``vectors``:
    one per question of ``labelled``, in its order). With ``balance``, all pairs of the rarer label and
    an equal seeded sample of the other."""
    texts = list(labelled)
    pairs = neighbour_pairs(vectors, k)
    if balance:
        same = [p for p in pairs if labelled[texts[p[0]]] == labelled[texts[p[1]]]]
        other = [p for p in pairs if labelled[texts[p[0]]] != labelled[texts[p[1]]]]
        few, many = sorted((same, other), key=len)
        pairs = sorted(few + random.Random(seed).sample(many, len(few)))
    return [(texts[i], texts[j], int(labelled[texts[i]] == labelled[texts[j]])) for i, j in pairs]
