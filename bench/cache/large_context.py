#!/usr/bin/env python3
"""A semantic-cache lookup when one context holds most entries: exact scan against sign bits.

An application with one system prompt that sends single questions puts every semantic entry in one
context (docs/semantic-cache.md, "The context rule"). A context of more than
``cache.semantic.exact_scan_limit`` entries is searched by its vectors' sign bits at once (the 256
nearest by Hamming distance, then those exactly); a smaller one by the HNSW graph first, and when
that finds nothing, by an exact scan of the context's own copy of its vectors. This fills an index
with ``--entries`` filler vectors (the latency benchmark's: perturbed STS-B embeddings,
``bench/cache/semantic.py``) in ``--contexts`` contexts, stores the 346 LangCache questions in
context 0, and asks the other side of each pair through ``SemanticCache.lookup`` at the defaults,
alternating lookup by lookup between the ``--limits`` given (default: no limit, i.e. the graph and
then a whole-block exact scan, and the shipped limit; ``--graph-first`` adds the sign bits only
after the graph, the way until 2026-12-06). Prints wall-clock and process-CPU p50/p99 and the hits::

    .venv/bin/python bench/cache/large_context.py [--entries 1000000] [--contexts 1] [--limits N ...] [--graph-first]

A hit on a pair labelled different is counted as false even when the hit is another pair's entry.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import semantic as latency_bench

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic import index as index_module
from tokenomy.cache.semantic.context_blocks import SCAN_LIMIT, ContextBlocks
from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic
from tokenomy.cache.semantic.index import context_id
from tokenomy.cache.semantic.matcher import SemanticCache
from tokenomy.cache.semantic.verifier import COSINE_FLOOR
from tokenomy.config.cache import SemanticCacheConfig
from tokenomy.providers.local.embeddings import FloatArray, MiniLMEmbedder

CONTEXT = "bench context 0"
FLOOR = COSINE_FLOOR


def recall(blocks: ContextBlocks, queries: list[FloatArray], limits: list[int]) -> dict[str, int]:
    """Per limit, how often the block search returns the exact best entry (cosine >= FLOOR) first."""
    context = context_id(CONTEXT)
    counts = {str(limit): 0 for limit in limits} | {"answerable": 0}
    for query in queries:
        blocks.exact_up_to = 2**62
        labels, sims = blocks.search(context, query, 1)
        if not len(labels) or sims[0] < FLOOR:
            continue
        counts["answerable"] += 1
        for limit in limits:
            blocks.exact_up_to = limit
            got, got_sims = blocks.search(context, query, 1)
            counts[str(limit)] += bool(len(got)) and (got[0] == labels[0] or got_sims[0] >= sims[0] - 1e-3)
    return counts


def ways(limits: list[int], graph_first: bool) -> dict[str, tuple[int, bool]]:
    """The ways to alternate: label -> (``exact_scan_limit``, whether the graph is searched first)."""
    out: dict[str, tuple[int, bool]] = {}
    for limit in limits:
        if limit >= 2**62:
            out["graph, then an exact scan of the whole block"] = (limit, True)
            continue
        default = " (the default)" if limit == SCAN_LIMIT else ""
        if graph_first:
            out[f"graph, then sign bits past {limit:,} entries (until 2026-12-06)"] = (limit, True)
        out[f"sign bits at once past {limit:,} entries{default}"] = (limit, False)
    return out


async def run(entries: int, contexts: int, limits: list[int], graph_first: bool, data: Path) -> str:
    latency_bench.CONTEXTS = contexts
    args = argparse.Namespace(entries=entries, data=data)
    model = MiniLMEmbedder(spin="in-run", arithmetic=embedder_arithmetic("auto", False))
    model.load()
    thread = ThreadPoolExecutor(max_workers=1)

    def embed_sync(texts: list[str]) -> FloatArray:
        return np.stack([e.vector for e in model.embed(list(texts))])

    async def embed(texts: list[str]) -> FloatArray:
        return await asyncio.get_running_loop().run_in_executor(thread, embed_sync, texts)

    with tempfile.TemporaryDirectory() as home:
        _, path = latency_bench.build(args, model, Path(home))
        config = SemanticCacheConfig(enabled=True, index_path=str(path), max_entries=entries + 10_000)
        semantic = SemanticCache(config, embed, spinning="in-run")
        pairs = cal.load_pairs(data / "langcache_query_pairs" / "pairs.csv")
        for i, pair in enumerate(pairs):
            await semantic.add(CONTEXT, pair.a, f"{10**12 + i:040x}")
        for pair in pairs[:20]:  # warm-up
            await semantic.lookup(CONTEXT, pair.b)
        blocks = semantic.index._blocks  # type: ignore[attr-defined]  # the usearch store's
        rows = ways(limits, graph_first)
        wall: dict[str, list[float]] = {w: [] for w in rows}
        cpu: dict[str, list[float]] = {w: [] for w in rows}
        hits = {w: [0, 0] for w in rows}
        search: dict[str, list[float]] = {w: [] for w in rows}
        with_candidate = dict.fromkeys(rows, 0)
        read = dict.fromkeys(rows, 0)  # candidates the matcher may read (the best three)
        vectors = [embed_sync([p.b])[0] for p in pairs]
        for j, pair in enumerate(pairs):
            for way in list(rows) if j % 2 == 0 else list(rows)[::-1]:  # alternated
                blocks.exact_up_to, first = rows[way]
                index_module.SIGN_BITS_FIRST = not first
                started, cpu_started = time.perf_counter(), time.process_time()
                hit = await semantic.lookup(CONTEXT, pair.b)
                wall[way].append((time.perf_counter() - started) * 1e3)
                cpu[way].append((time.process_time() - cpu_started) * 1e3)
                if hit is not None:
                    hits[way][0] += 1
                    hits[way][1] += pair.label != 1
        for j, vector in enumerate(vectors):  # the search alone, apart: not next to the models' threads
            for way in list(rows) if j % 2 == 0 else list(rows)[::-1]:
                blocks.exact_up_to, first = rows[way]
                index_module.SIGN_BITS_FIRST = not first
                started = time.perf_counter()
                candidates = semantic.index.search(vector, context_id(CONTEXT), FLOOR)
                search[way].append((time.perf_counter() - started) * 1e3)
                with_candidate[way] += bool(candidates)
                read[way] += min(3, len(candidates))
        index_module.SIGN_BITS_FIRST = True
        found = recall(blocks, vectors, sorted({lim for lim, _ in rows.values()}))
        semantic.close()
    model.close()
    thread.shutdown()
    held = entries // contexts + len(pairs)
    lines = [
        f"{entries:,} filler entries in {contexts} context(s); the queried context holds {held:,}; "
        f'{len(pairs)} lookups per row, the rows alternated lookup by lookup. "found": the context\'s '
        f"search alone returns the exact best entry first, of the {found['answerable']} queries with one "
        f"of cosine >= {FLOOR}.",
        "",
        "| search of the context | lookup, wall p50 / p99 ms | lookup, process CPU p50 / p99 ms "
        "| search alone, wall p50 / p99 ms | searches with a candidate | candidates per search (at most 3) "
        "| hits | on pairs labelled different "
        "| found |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for way in rows:
        w, c, s = np.array(wall[way]), np.array(cpu[way]), np.array(search[way])
        lines.append(
            f"| {way} | {np.percentile(w, 50):.2f} / {np.percentile(w, 99):.2f} | "
            f"{np.percentile(c, 50):.2f} / {np.percentile(c, 99):.2f} | "
            f"{np.percentile(s, 50):.2f} / {np.percentile(s, 99):.2f} | {with_candidate[way]} "
            f"| {read[way] / len(pairs):.2f} | {hits[way][0]} | {hits[way][1]} "
            f"| {found[str(rows[way][0])]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--contexts", type=int, default=1)
    parser.add_argument(
        "--limits", type=int, nargs="+", default=[2**62, SCAN_LIMIT],
        help="exact_scan_limit values to alternate (default: none, i.e. always exact, and the default)",
    )  # fmt: skip
    parser.add_argument(
        "--graph-first", action="store_true",
        help="also the way until 2026-12-06: the graph search first, the sign bits when it finds nothing",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=latency_bench.ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    print(asyncio.run(run(args.entries, args.contexts, args.limits, args.graph_first, args.data)))


if __name__ == "__main__":
    main()
