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
alternating lookup by lookup between the ways asked for: ``--limits`` (default: the shipped limit;
a huge one scans the whole block exactly, whose read of every vector also slows the lookups after
it), ``--graph-first`` (also the sign bits only after the graph, the way until 2026-12-06) and
``--codes`` (sign-bit variants: the first DIMS dimensions, K candidates). Prints wall-clock and
process-CPU p50/p99 of the lookups, the search alone (timed apart) and the hits::

    .venv/bin/python bench/cache/large_context.py [--entries 1000000] [--contexts 1] [--limits N ...] [--graph-first]
        [--codes all:256 256:1024 ...]

A hit on a pair labelled different is counted as false even when the hit is another pair's entry.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))
import semantic as latency_bench
from bench.quantiles import quantile_interval

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic import context_blocks as blocks_module
from tokenomy.cache.semantic import index as index_module
from tokenomy.cache.semantic.context_blocks import PREFILTER, SCAN_LIMIT, ContextBlocks, code_bytes, sign_bits
from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic
from tokenomy.cache.semantic.index import context_id
from tokenomy.cache.semantic.matcher import SemanticCache
from tokenomy.cache.semantic.verifier import COSINE_FLOOR
from tokenomy.config.cache import SemanticCacheConfig
from tokenomy.providers.local.embeddings import FloatArray, MiniLMEmbedder

CONTEXT = "bench context 0"
FLOOR = COSINE_FLOOR


@dataclass(frozen=True)
class Way:
    """One way to search the queried context."""

    label: str
    limit: int  # exact_scan_limit
    graph_first: bool = False
    code_dims: int | None = None  # the sign-bit code: all dimensions, or the first code_dims
    prefilter: int = PREFILTER


def ways(limits: list[int], graph_first: bool, codes: list[tuple[int | None, int]]) -> list[Way]:
    """The ways to alternate (``codes``: (dimensions, candidates) of each sign-bit variant)."""
    out: list[Way] = []
    for limit in limits:
        if limit >= 2**62:
            out.append(Way("graph, then an exact scan of the whole block", limit, graph_first=True))
            continue
        default = " (the default)" if limit == SCAN_LIMIT else ""
        if graph_first:
            out.append(Way(f"graph, then sign bits past {limit:,} entries (until 2026-12-06)", limit, True))
        for dims, prefilter in codes:
            shipped = (dims, prefilter) == (None, PREFILTER)
            code = "" if shipped else f", code of the first {dims or 'all'} dimensions, {prefilter} candidates"
            out.append(Way(f"sign bits at once past {limit:,} entries{code}{default if shipped else ''}",
                           limit, False, dims, prefilter))  # fmt: skip
    return out


def use(way: Way, blocks: ContextBlocks, codes: dict[int | None, npt.NDArray[np.uint8]]) -> None:
    """Search the queried context ``way`` from now on (the codes of its block swapped in)."""
    blocks.exact_up_to = way.limit
    index_module.SIGN_BITS_FIRST = not way.graph_first
    blocks.code_dims, blocks_module.PREFILTER = way.code_dims, way.prefilter
    blocks._blocks[context_id(CONTEXT)].bits = codes[way.code_dims]


async def run(
    entries: int,
    contexts: int,
    limits: list[int],
    graph_first: bool,
    codes_: list[tuple[int | None, int]],
    data: Path,
) -> str:
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
        block = blocks._blocks[context_id(CONTEXT)]
        codes = {dims: sign_bits(block.vectors[: block.n, :dims], code_bytes(dims or blocks.ndim))
                 for dims, _ in [(None, 0), *codes_]}  # fmt: skip
        rows = {way.label: way for way in ways(limits, graph_first, codes_)}
        wall: dict[str, list[float]] = {w: [] for w in rows}
        cpu: dict[str, list[float]] = {w: [] for w in rows}
        hits = {w: [0, 0] for w in rows}
        search: dict[str, list[float]] = {w: [] for w in rows}
        with_candidate = dict.fromkeys(rows, 0)
        read = dict.fromkeys(rows, 0)  # candidates the matcher may read (the best three)
        found = dict.fromkeys(rows, 0)
        vectors = [embed_sync([p.b])[0] for p in pairs]
        for j, pair in enumerate(pairs):
            for label in list(rows) if j % 2 == 0 else list(rows)[::-1]:  # alternated
                use(rows[label], blocks, codes)
                started, cpu_started = time.perf_counter(), time.process_time()
                hit = await semantic.lookup(CONTEXT, pair.b)
                wall[label].append((time.perf_counter() - started) * 1e3)
                cpu[label].append((time.process_time() - cpu_started) * 1e3)
                if hit is not None:
                    hits[label][0] += 1
                    hits[label][1] += pair.label != 1
        blocks.exact_up_to = 2**62
        best = [blocks.search(context_id(CONTEXT), vector, 1)[1] for vector in vectors]  # exact
        answerable = sum(bool(len(b)) and b[0] >= FLOOR for b in best)
        for j, vector in enumerate(vectors):  # the search alone, apart: not next to the models' threads
            for label in list(rows) if j % 2 == 0 else list(rows)[::-1]:
                use(rows[label], blocks, codes)
                started = time.perf_counter()
                candidates = semantic.index.search(vector, context_id(CONTEXT), FLOOR)
                search[label].append((time.perf_counter() - started) * 1e3)
                with_candidate[label] += bool(candidates)
                read[label] += min(3, len(candidates))
                found[label] += bool(candidates) and candidates[0].similarity >= best[j][0] - 1e-3
        use(Way("", SCAN_LIMIT), blocks, codes)
        semantic.close()
    model.close()
    thread.shutdown()
    held = entries // contexts + len(pairs)
    lines = [
        f"{entries:,} filler entries in {contexts} context(s); the queried context holds {held:,}; "
        f'{len(pairs)} lookups per row, the rows alternated lookup by lookup. "found": the context\'s '
        f"search alone returns the exact best entry first, of the {answerable} queries with one "
        f"of cosine >= {FLOOR}.",
        "",
        "| search of the context | lookup, wall p50 / p99 [its 95 % interval] ms | lookup, process CPU p50 / p99 ms "
        "| search alone, wall p50 / p99 ms | searches with a candidate | candidates per search (at most 3) "
        "| hits | on pairs labelled different "
        "| found |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for way in rows:
        w, c, s = np.array(wall[way]), np.array(cpu[way]), np.array(search[way])
        low, high = quantile_interval(list(w), 0.99)
        lines.append(
            f"| {way} | {np.percentile(w, 50):.2f} / {np.percentile(w, 99):.2f} [{low:.2f}, {high:.2f}] | "
            f"{np.percentile(c, 50):.2f} / {np.percentile(c, 99):.2f} | "
            f"{np.percentile(s, 50):.2f} / {np.percentile(s, 99):.2f} | {with_candidate[way]} "
            f"| {read[way] / len(pairs):.2f} | {hits[way][0]} | {hits[way][1]} "
            f"| {found[way]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--contexts", type=int, default=1)
    parser.add_argument(
        "--limits", type=int, nargs="+", default=[SCAN_LIMIT],
        help="exact_scan_limit values to alternate (default: the default; 4611686018427387904 scans exactly, "
        "but its 768 MB read per lookup slows the rows after it: it evicts the models from the CPU caches)",
    )  # fmt: skip
    parser.add_argument(
        "--graph-first", action="store_true",
        help="also the way until 2026-12-06: the graph search first, the sign bits when it finds nothing",
    )  # fmt: skip
    parser.add_argument(
        "--codes", nargs="+", default=[f"all:{PREFILTER}"], metavar="DIMS:K",
        help="sign-bit variants past the limit: code of the first DIMS dimensions (or all), K candidates",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=latency_bench.ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    try:
        code_list = [(None if d == "all" else int(d), int(k)) for d, k in (c.split(":") for c in args.codes)]
    except ValueError:
        parser.error(f"--codes takes DIMS:K pairs such as all:256 or 256:1024, not {' '.join(args.codes)}")
    print(asyncio.run(run(args.entries, args.contexts, args.limits, args.graph_first, code_list, args.data)))


if __name__ == "__main__":
    main()
