#!/usr/bin/env python3
"""A semantic-cache lookup when one context holds most entries: exact scan against sign bits first.

An application with one system prompt that sends single questions puts every semantic entry in one
context (docs/semantic-cache.md, "The context rule"). When the HNSW graph search finds nothing for
a lookup, the index searches that context's own copy of its vectors: exactly up to
``cache.semantic.exact_scan_limit`` entries, beyond by sign bits first (the 256 nearest by Hamming
distance, then those exactly). This fills an index with ``--entries`` filler vectors (the latency
benchmark's: perturbed STS-B embeddings, ``bench/cache/semantic.py``) in ``--contexts`` contexts,
stores the 346 LangCache questions in context 0, and asks the other side of each pair through
``SemanticCache.lookup`` at the defaults, alternating lookup by lookup between the two ways of
searching a block past the limit. Prints wall-clock and process-CPU p50/p99 and the hits::

    .venv/bin/python bench/cache/large_context.py [--entries 1000000] [--contexts 1]

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
from tokenomy.cache.semantic.context_blocks import SCAN_LIMIT
from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic
from tokenomy.cache.semantic.matcher import SemanticCache
from tokenomy.config.cache import SemanticCacheConfig
from tokenomy.providers.local.embeddings import FloatArray, MiniLMEmbedder

CONTEXT = "bench context 0"


async def run(entries: int, contexts: int, data: Path) -> str:
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
        ways = {
            "exact scan of the whole block": 2**62,
            f"sign bits past {SCAN_LIMIT:,} entries (the default)": SCAN_LIMIT,
        }
        wall: dict[str, list[float]] = {w: [] for w in ways}
        cpu: dict[str, list[float]] = {w: [] for w in ways}
        hits = {w: [0, 0] for w in ways}
        for j, pair in enumerate(pairs):
            for way in list(ways) if j % 2 == 0 else list(ways)[::-1]:
                blocks.exact_up_to = ways[way]
                started, cpu_started = time.perf_counter(), time.process_time()
                hit = await semantic.lookup(CONTEXT, pair.b)
                wall[way].append((time.perf_counter() - started) * 1e3)
                cpu[way].append((time.process_time() - cpu_started) * 1e3)
                if hit is not None:
                    hits[way][0] += 1
                    hits[way][1] += pair.label != 1
        semantic.close()
    model.close()
    thread.shutdown()
    held = entries // contexts + len(pairs)
    lines = [
        f"{entries:,} filler entries in {contexts} context(s); the queried context holds {held:,}; "
        f"{len(pairs)} lookups per row, the two rows alternated lookup by lookup.",
        "",
        "| block past the graph search | wall p50 / p99 ms | process CPU p50 / p99 ms | hits "
        "| on pairs labelled different |",
        "|---|---|---|---|---|",
    ]
    for way in ways:
        w, c = np.array(wall[way]), np.array(cpu[way])
        lines.append(
            f"| {way} | {np.percentile(w, 50):.2f} / {np.percentile(w, 99):.2f} | "
            f"{np.percentile(c, 50):.2f} / {np.percentile(c, 99):.2f} | {hits[way][0]} | {hits[way][1]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--contexts", type=int, default=1)
    parser.add_argument("--data", type=Path, default=latency_bench.ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    print(asyncio.run(run(args.entries, args.contexts, args.data)))


if __name__ == "__main__":
    main()
