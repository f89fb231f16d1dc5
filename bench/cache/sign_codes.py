#!/usr/bin/env python3
"""The sign-bit search of one large context: which codes, how many candidates, at what cost.

A context past ``cache.semantic.exact_scan_limit`` is searched in two stages
(:mod:`tokenomy.cache.semantic.context_blocks`): the ``K`` entries nearest by Hamming distance
between sign codes (faiss ``knn_hamming``, one thread), then those ``K`` exactly. This times that
search alone over ``--entries`` float16 vectors for each code and ``K``, and counts how often it
returns the exact best entry (cosine >= 0.6; "within 0.01": an entry at most 0.01 below it). Codes:

- ``signs-48B``: one bit per dimension, 48 bytes (until 2026-12-06);
- ``signs-64B``: the same bits padded with zero bytes to 64, a size faiss has a dedicated routine
  for; every distance is unchanged (shipped);
- ``first-256``: the signs of the first 256 dimensions (32 bytes);
- ``pca-256``: the signs of the 256 leading principal components (32 bytes), the components fitted
  on the block's first 32,768 entries (a block's projection would be fitted when it crosses the limit).

Blocks (``--blocks``): ``perturbed`` and ``near-copies`` hold ``bench/cache/ann_recall.py``'s filler
plus the 346 stored LangCache questions, queried by the other sides; ``one-domain`` holds noisy
copies (cosine ~0.95) of the ~10,000 BANKING77 training questions only, in shuffled order, queried
by 600 BANKING77 test questions: the many near neighbours one application's traffic has::

    .venv/bin/python bench/cache/sign_codes.py [--entries 1000000] [--blocks perturbed near-copies one-domain]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ann_recall import sentences
from semantic import ROOT, embed_all, synthetic

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.context_blocks import _faiss, code_bytes, sign_bits
from tokenomy.providers.local.embeddings import MiniLMEmbedder

F32 = npt.NDArray[np.float32]
Codes = Callable[[F32], npt.NDArray[np.uint8]]


def block(kind: str, entries: int, model: MiniLMEmbedder, data: Path) -> tuple[npt.NDArray[np.float16], F32]:
    """The block's vectors (float16) and the queries."""
    rng = np.random.default_rng(0)
    if kind == "one-domain":
        with gzip.open(data / "banking77" / "train.csv.gz", "rt", encoding="utf-8") as f:
            train = list(dict.fromkeys(r["text"] for r in csv.DictReader(f)))
        with open(data / "banking77" / "test.csv", encoding="utf-8") as f:
            test = list(dict.fromkeys(r["text"] for r in csv.DictReader(f)))[:600]
        vectors = synthetic(embed_all(model, train), entries, rng, 0.95)[rng.permutation(entries)]
        return vectors.astype(np.float16), embed_all(model, test)
    pairs = cal.load_pairs(data / "langcache_query_pairs" / "pairs.csv")
    filler = synthetic(embed_all(model, sentences(data, kind)), entries, rng, 0.8 if kind == "perturbed" else 0.95)
    stored = embed_all(model, [p.a for p in pairs])
    return np.concatenate([filler, stored]).astype(np.float16), embed_all(model, [p.b for p in pairs])


def exact_best(vectors: npt.NDArray[np.float16], queries: F32) -> F32:
    """Each query's best cosine over the block (float32 arithmetic on the float16 vectors)."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    for lo in range(0, len(vectors), 100_000):
        best = np.maximum(best, (vectors[lo : lo + 100_000].astype(np.float32) @ queries.T).max(axis=0))
    return best


def codes(vectors: npt.NDArray[np.float16]) -> dict[str, Codes]:
    ndim = vectors.shape[1]
    fit = vectors[:32_768].astype(np.float32)
    mean = fit.mean(axis=0)
    values, axes = np.linalg.eigh(np.cov((fit - mean).T))
    pca = axes[:, np.argsort(-values)[:256]].astype(np.float32)
    return {
        "signs-48B (until 2026-12-06)": lambda x: sign_bits(x),
        "signs-64B (shipped)": lambda x: sign_bits(x, code_bytes(ndim)),
        "first-256": lambda x: sign_bits(x[:, :256]),
        "pca-256": lambda x: sign_bits((x - mean) @ pca),
    }


def measure(kind: str, entries: int, ks: list[int], model: MiniLMEmbedder, data: Path) -> list[str]:
    faiss = _faiss()
    vectors, queries = block(kind, entries, model, data)
    best = exact_best(vectors, queries)
    answerable = np.flatnonzero(best >= 0.6)
    rows = []
    for name, code in codes(vectors).items():
        bits = np.concatenate(
            [code(vectors[lo : lo + 100_000].astype(np.float32)) for lo in range(0, len(vectors), 100_000)]
        )
        query_bits = code(queries)
        for k in ks:
            times, found, near = [], 0, 0
            for i in answerable:
                started = time.perf_counter()
                _, rows_found = faiss.knn_hamming(query_bits[i : i + 1], bits, k)
                got = rows_found[0][rows_found[0] >= 0]
                sims = vectors[got].astype(np.float32) @ queries[i]
                top = float(sims.max())
                times.append((time.perf_counter() - started) * 1e3)
                found += top >= best[i] - 1e-3
                near += top >= best[i] - 0.01
            t = np.array(times)
            rows.append(
                f"| {kind} | {name} | {bits.shape[1]} | {k} | {found}/{len(answerable)} | {near}/{len(answerable)} "
                f"| {np.percentile(t, 50):.2f} / {np.percentile(t, 99):.2f} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--blocks", nargs="+", default=["perturbed", "near-copies", "one-domain"],
                        choices=["perturbed", "near-copies", "one-domain"])  # fmt: skip
    parser.add_argument("--k", type=int, nargs="+", default=[256, 1024], help="candidates passed on to the exact stage")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    model = MiniLMEmbedder()
    model.load()
    print(f"{args.entries:,} entries per block; the search alone (Hamming top K, then K exactly), wall ms.\n")
    print("| block | code | bytes | K | exact best found | within 0.01 | ms p50 / p99 |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.blocks:
        for row in measure(kind, args.entries, args.k, model, args.data):
            print(row, flush=True)


if __name__ == "__main__":
    main()
