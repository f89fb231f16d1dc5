"""Recall of the semantic tier's HNSW index against exact search, and what a search costs.

One command (``--entries`` takes several sizes; the 1,000,000-entry build is CPU-heavy)::

    .venv/bin/python bench/cache/ann_recall.py --entries 100000 1000000
    .venv/bin/python bench/cache/ann_recall.py --entries 200000 --contexts 13 --ef 128 --wide 1024 --per-context-graph

The index (:class:`~tokenomy.cache.semantic.index.VectorIndex`, as the gateway builds it) holds
``--entries`` filler vectors spread over ``--contexts`` (64) conversation contexts plus, in context 0, the stored
side of each of the 346 LangCache pairs; the other sides are the queries (real MiniLM
embeddings). Filler (``--filler``):

- ``perturbed``: MiniLM embeddings of 8,000 STS-B sentences, each copy plus Gaussian noise, unit
  length, cosine ≈ 0.8 to its sentence (the filler of ``bench/cache/semantic.py``; isotropic noise
  of this size makes the data high-dimensional, the hard case for a graph index);
- ``near-copies``: MiniLM embeddings of every distinct STS-B and BANKING77 text (~28,000 real
  sentences and questions), each copy with small noise (cosine ≈ 0.95 to its text, like
  rewordings).

For each query the exact answer is the best entry of context 0 with cosine ≥ the cosine floor
(0.6), computed in float32 from the same float16 vectors the index holds. For each
``expansion_search`` the table gives how often ``VectorIndex.search`` returns that entry first
(recall@1), how many queries got any candidate, and the CPU time per search (thread CPU time, which
other jobs on a shared machine disturb less than wall-clock time; wall-clock too). Rows with a
wider second search have the index's block scan off (the earlier behaviour); the *block scan* row
is the shipped one (a large context's contiguous vectors compared exactly when the graph finds
nothing). ``--per-context-graph`` also builds a separate HNSW graph over context 0 alone (the
alternative to the block) and searches it.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic import index as index_module
from tokenomy.cache.semantic.context_blocks import SCAN_LIMIT
from tokenomy.cache.semantic.index import VectorIndex, context_id
from tokenomy.cache.semantic.verifier import COSINE_FLOOR, ModelCheck
from tokenomy.providers.local.embeddings import MiniLMEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from semantic import embed_all, synthetic  # the latency benchmark's filler and embedding

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (index_module.EXPANSION_SEARCH, index_module.EXPANSION_WIDE)
TIE = 1e-3
"""Similarities this close are the same (float16 vectors; the index computes in its own precision)."""


def sentences(data: Path, filler: str) -> list[str]:
    seen: dict[str, None] = {}
    splits = ["sts-train.csv"] if filler == "perturbed" else ["sts-train.csv", "sts-dev.csv", "sts-test.csv"]
    for split in splits:
        for line in (data / "stsb" / split).read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if len(fields) >= 7:
                seen.setdefault(fields[5])
                seen.setdefault(fields[6])
    if filler == "perturbed":
        return list(seen)[:8000]
    with gzip.open(data / "banking77" / "train.csv.gz", "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            seen.setdefault(row["text"])
    with open(data / "banking77" / "test.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            seen.setdefault(row["text"])
    return list(seen)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def run(args: argparse.Namespace, entries: int, base: npt.NDArray[np.float32], stored: npt.NDArray[np.float32],
        queries: npt.NDArray[np.float32], pairs: list[cal.Pair]) -> tuple[list[str], list[list[str]]]:  # fmt: skip
    rng = np.random.default_rng(0)
    cosine = 0.8 if args.filler == "perturbed" else 0.95
    vectors = synthetic(base, entries, rng, cosine)
    contexts = np.array([context_id(f"bench context {i}") for i in range(args.contexts)], dtype=np.uint64)
    which = np.arange(entries) % args.contexts
    index_module.CONNECTIVITY = args.connectivity  # read when the graph is made
    index = VectorIndex(entries + len(stored) + 10, vectors.shape[1])
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for lo in range(0, entries, 50_000):
        hi = min(entries, lo + 50_000)
        index.add_many(vectors[lo:hi], contexts[which[lo:hi]], [f"{i:040x}" for i in range(lo, hi)],
                       ["filler"] * (hi - lo))  # fmt: skip
    ctx0 = (int(contexts[0, 0]), int(contexts[0, 1]))
    index.add_many(
        stored,
        np.repeat(contexts[:1], len(stored), axis=0),
        [f"{10**12 + i:040x}" for i in range(len(stored))],
        [p.a for p in pairs],
    )
    build_cpu, build_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    # exact truth: context 0's vectors, as float16 like the index holds them
    mine = np.concatenate([vectors[which == 0], stored]).astype(np.float16).astype(np.float32)
    labels = np.concatenate([np.flatnonzero(which == 0) + 1, entries + 1 + np.arange(len(stored))])
    sims = queries.astype(np.float16).astype(np.float32) @ mine.T
    best = sims.argmax(1)
    truth = np.where(sims[np.arange(len(queries)), best] >= COSINE_FLOOR, labels[best], 0)
    best_sim = sims[np.arange(len(queries)), best]
    own_sim = sims[np.arange(len(queries)), len(mine) - len(stored) + np.arange(len(stored))]  # own stored question
    partner_ok = own_sim >= COSINE_FLOOR
    answerable = int((truth != 0).sum())
    rows = []
    notes = []
    if args.per_context_graph:
        row, note = per_context_graph(mine, labels, queries, best_sim, truth, entries, args)
        rows.append(row)
        notes.append(note)
    del vectors, mine, sims
    settings = [(ef, ef, 0) for ef in args.ef] + [(index_module.EXPANSION_SEARCH, w, 0) for w in args.wide]
    settings += [(index_module.EXPANSION_SEARCH, 0, limit) for limit in args.scan_limits]  # wide 0: the block
    for ef, wide, limit in settings:  # wide > ef: a second, wider search when the first finds nothing
        index_module.BLOCK_SEARCH = wide == 0
        index._blocks.exact_up_to = limit or SCAN_LIMIT
        index_module.EXPANSION_SEARCH, index_module.EXPANSION_WIDE = ef, wide or ef
        index._graph.expansion_search = ef  # type: ignore[misc]  # settable
        found = top1 = within = own = 0
        cpu: list[float] = []
        wall: list[float] = []
        for i, (q, want) in enumerate(zip(queries, truth, strict=True)):
            c0, w0 = time.thread_time(), time.perf_counter()
            got = index.search(q, ctx0, COSINE_FLOOR)
            cpu.append(time.thread_time() - c0)
            wall.append(time.perf_counter() - w0)
            found += bool(got)
            # equal similarity counts as found: several stored questions are the same sentence (same vector)
            top1 += bool(got) and want != 0 and got[0].similarity >= best_sim[i] - TIE
            within += want != 0 and any(c.similarity >= best_sim[i] - TIE for c in got)
            own += bool(partner_ok[i]) and any(abs(c.similarity - own_sim[i]) <= TIE for c in got)
        block = "block scan" if limit >= 2**62 else f"block (sign bits past {limit:,})"
        shipped = " (shipped)" if limit == SCAN_LIMIT else ""
        setting = str(ef) if ef == wide else f"{ef}, then {wide}" if wide else f"{ef}, then {block}{shipped}"
        rows.append([f"{entries:,}", args.filler, str(args.connectivity), setting, f"{top1}/{answerable}",
                     f"{within}/{answerable}",
                     f"{own}/{int(partner_ok.sum())}",
                     f"{found}", f"{pct(cpu, 50):.2f} / {pct(cpu, 99):.2f}",
                     f"{pct(wall, 50):.2f} / {pct(wall, 99):.2f}"])  # fmt: skip
    if args.lookup:
        rows.append(lookups(index, ctx0, pairs, entries, args))
    per = entries // args.contexts
    how = "exact comparison" if per <= index_module.EXACT_SCAN else "a scan of its block"
    in_blocks = sum(index._blocks.size(c) for c in ((int(a), int(b)) for a, b in contexts))
    build = (f"{entries:,} entries ({args.filler}, connectivity {args.connectivity}): build {build_cpu:.0f} s CPU, "
             f"{build_wall:.0f} s wall; graph {index._graph.memory_usage / 2**20:,.0f} MiB; ~{per:,} entries per "
             f"context, so a search that finds nothing falls back to {how}; blocks "
             f"{index._blocks.nbytes() / 2**20:,.0f} MiB for {in_blocks:,} entries in "
             f"{len(index._blocks)} contexts ({index._blocks.nbytes() / max(1, in_blocks):.0f} bytes per entry, "
             f"row table included)")  # fmt: skip
    return [build, *notes], rows


def per_context_graph(mine: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], queries: npt.NDArray[np.float32],
                      best_sim: npt.NDArray[np.float32], truth: npt.NDArray[np.int64], entries: int,
                      args: argparse.Namespace) -> tuple[list[str], str]:  # fmt: skip
    """The alternative to a block: a separate HNSW graph (the index's settings) over context 0 alone."""
    from usearch.index import Index  # after onnxruntime (see tokenomy/cache/semantic/index.py)

    graph = Index(ndim=mine.shape[1], metric="ip", dtype="f16", connectivity=args.connectivity,
                  expansion_add=index_module.EXPANSION_ADD, expansion_search=index_module.EXPANSION_SEARCH)  # fmt: skip
    c0, w0 = time.process_time(), time.perf_counter()
    graph.add(labels.astype(np.uint64), mine, threads=0)
    build_cpu, build_wall = time.process_time() - c0, time.perf_counter() - w0
    top1 = found = 0
    cpu: list[float] = []
    wall: list[float] = []
    for i, q in enumerate(queries):
        c0, w0 = time.thread_time(), time.perf_counter()
        m = graph.search(q, 32)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
        sims = 1.0 - np.asarray(m.distances, dtype=np.float32)
        ok = sims >= COSINE_FLOOR
        found += bool(ok.any())
        top1 += bool(ok.any()) and truth[i] != 0 and sims[0] >= best_sim[i] - TIE
    answerable = int((truth != 0).sum())
    size = graph.memory_usage
    note = (f"separate graph over context 0 ({len(mine):,} entries): build {build_cpu:.1f} s CPU, "
            f"{build_wall:.1f} s wall; {size / 2**20:,.1f} MiB ({size / len(mine):.0f} bytes per entry)")  # fmt: skip
    setting = f"separate graph of context 0, {index_module.EXPANSION_SEARCH}"
    row = [f"{entries:,}", args.filler, str(args.connectivity), setting,
           f"{top1}/{answerable}", "", "", str(found), f"{pct(cpu, 50):.2f} / {pct(cpu, 99):.2f}",
           f"{pct(wall, 50):.2f} / {pct(wall, 99):.2f}"]  # fmt: skip
    return row, note


def lookups(index: VectorIndex, ctx0: tuple[int, int], pairs: list[cal.Pair], entries: int,
            args: argparse.Namespace) -> list[str]:  # fmt: skip
    """The whole lookup at the shipped settings, on this thread: embed the query (MiniLM, one
    thread, no spinning), search, and run gates + cross-encoder + verifier on the candidates."""
    index_module.EXPANSION_SEARCH, index_module.EXPANSION_WIDE = SHIPPED
    index_module.BLOCK_SEARCH = True
    index._graph.expansion_search = SHIPPED[0]  # type: ignore[misc]  # settable
    model = MiniLMEmbedder(n_threads=1, spin="never")
    model.load()
    check = ModelCheck(None, None, None)
    assert check.load()
    cpu: list[float] = []
    wall: list[float] = []
    hits = found = 0
    for pair in pairs[:20]:  # warm-up
        check.decide(pair.b, [(pair.a, 0.9)])
    for pair in pairs:
        c0, w0 = time.thread_time(), time.perf_counter()
        vector = np.asarray(model.embed([pair.b])[0].vector, dtype=np.float32)
        got = index.search(vector, ctx0, check.cosine_floor)
        if got:
            found += 1
            decisions = check.decide(pair.b, [(c.text, c.similarity) for c in got])
            hits += max(decisions) >= check.accept
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return [f"{entries:,}", args.filler, str(args.connectivity), f"whole lookup (shipped: {SHIPPED[0]}, then "
            f"block scan), {hits} hits", "", "", "", str(found), f"{pct(cpu, 50):.2f} / {pct(cpu, 99):.2f}",
            f"{pct(wall, 50):.2f} / {pct(wall, 99):.2f}"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, nargs="+", default=[100_000])
    ap.add_argument("--filler", choices=["perturbed", "near-copies"], default="perturbed")
    ap.add_argument("--connectivity", type=int, default=index_module.CONNECTIVITY)
    ap.add_argument("--contexts", type=int, default=64, help="contexts the entries are spread over")
    ap.add_argument("--per-context-graph", action="store_true", help="also a separate graph over context 0")
    ap.add_argument("--ef", type=int, nargs="*", default=[128, 512, 1024], help="one search at this expansion")
    ap.add_argument("--wide", type=int, nargs="*", default=[512, 1024, 2048],
                    help="the gateway's way: expansion 128, then this one when nothing is found")  # fmt: skip
    ap.add_argument("--scan-limits", type=int, nargs="*", default=[SCAN_LIMIT],
                    help="exact_scan_limit of the block rows (2**62 or more: always an exact scan)")  # fmt: skip
    ap.add_argument("--lookup", action="store_true", help="also time whole lookups (embedding + search + verifier)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "ann-recall", help="embeddings kept between runs")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    cached = args.cache / f"{args.filler}.npz"
    pairs = cal.load_pairs(args.data / "langcache_query_pairs" / "pairs.csv")
    if cached.exists():
        with np.load(cached) as f:
            base, stored, queries = f["base"], f["stored"], f["queries"]
    else:
        model = MiniLMEmbedder()
        model.load()
        base = embed_all(model, sentences(args.data, args.filler))
        stored, queries = embed_all(model, [p.a for p in pairs]), embed_all(model, [p.b for p in pairs])
        np.savez(cached, base=base, stored=stored, queries=queries)
    notes, rows = [], []
    for entries in args.entries:
        n, r = run(args, entries, base, stored, queries, pairs)
        notes += n
        rows += r
        print("\n".join(n), file=sys.stderr, flush=True)
    print(f"Machine: {os.cpu_count()} cores; queries: {len(queries)} LangCache questions; cosine floor {COSINE_FLOOR}.")
    print("\n".join(f"- {n}" for n in notes))
    print(
        "\n| entries | filler | connectivity | expansion_search | top-1 = exact top-1 | exact top-1 found "
        "| own stored question found | queries with a candidate "
        "| search CPU p50 / p99 ms | search wall p50 / p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))


if __name__ == "__main__":
    main()
