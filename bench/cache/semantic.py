"""Benchmark of the semantic cache tier.

One command: ``.venv/bin/python bench/cache/semantic.py`` (``--entries 100000`` for a short run).
It prints markdown tables and writes them to ``bench/cache/results-semantic.md``:

1. **Index at size**: fills a :class:`VectorIndex` with ``--entries`` synthetic vectors — real
   MiniLM embeddings of STS-B sentences, each copy perturbed with Gaussian noise (cosine ≈ 0.8 to
   its sentence) and re-normalised — spread over 64 conversation contexts. Reports build time,
   save and load time, file sizes and the process's resident-memory growth.
2. **Lookup latency**: ``SemanticCache.lookup`` at the default settings (embed with MiniLM on a
   worker thread + search + context filter + gates + cross-encoder + verifier) for real query
   texts (LangCache pairs) in a context that holds ~1/64 of the entries plus the other side of
   each pair; p50/p99 of the whole lookup (wall clock, and the process's CPU time per lookup,
   which other jobs on a shared machine disturb less), and of the embedding, the search and the
   cross-encoder alone. Once for each way the ONNX threads may wait between operators
   (``--spinning``: spin within a run only, the gateway's setting; never; always), and for each
   arithmetic of the query embedder (``--embedder-arithmetic``; default the gateway's choice).
3. **Precision/recall** on the LangCache pairs and STS-B (score ≥ 4 same, ≤ 2 different; train,
   dev and test separately): cosine threshold 0.90 alone and with the word check (the earlier
   default), and the default matcher at its shipped setting. The shipped cross-encoder and
   verifier were trained on the LangCache pairs and STS-B train, so only STS-B dev and test are
   held out for it; its cross-validated figures come from ``bench/cache/fit_verifier.py``.

The pair sets are read from ``--data`` (default ``../shared/data`` beside the repository).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic
from tokenomy.cache.semantic.index import VectorIndex, context_id
from tokenomy.cache.semantic.matcher import SemanticCache
from tokenomy.cache.semantic.verifier import ModelCheck
from tokenomy.config.cache import DEFAULT_SEMANTIC_THRESHOLD, SemanticCacheConfig
from tokenomy.providers.local.embeddings import FloatArray, MiniLMEmbedder
from tokenomy.providers.local.onnx_threads import Spinning

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CONTEXTS = 64

from bench.quantiles import quantile_interval  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def embed_all(model: MiniLMEmbedder, texts: list[str]) -> npt.NDArray[np.float32]:
    rows = [np.stack([e.vector for e in model.embed(list(texts[i : i + 64]))]) for i in range(0, len(texts), 64)]
    return np.concatenate(rows).astype(np.float32)


def synthetic(
    base: npt.NDArray[np.float32], n: int, rng: np.random.Generator, cosine: float = 0.8
) -> npt.NDArray[np.float32]:
    """``n`` perturbed copies of the base vectors, unit length (cosine ≈ ``cosine`` to their base)."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    sigma = np.sqrt(1 / cosine**2 - 1) / np.sqrt(base.shape[1])
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        rows = base[np.arange(start, stop) % len(base)]
        rows = rows + sigma * rng.standard_normal(rows.shape, dtype=np.float32)
        out[start:stop] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def pct(values: list[float], q: float) -> str:
    """The ``q``-th percentile of ``values`` (seconds) in ms, with its 95 % interval (order statistics)."""
    low, high = quantile_interval([v * 1000 for v in values], q / 100)
    return f"{float(np.percentile(np.array(values) * 1000, q)):.2f} [{low:.2f}, {high:.2f}]"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def stsb_sentences(path: Path, limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 7:
            seen.setdefault(fields[5])
            seen.setdefault(fields[6])
        if len(seen) >= limit:
            break
    return list(seen)


def build(args: argparse.Namespace, model: MiniLMEmbedder, home: Path) -> tuple[list[list[str]], Path]:
    rng = np.random.default_rng(0)
    sentences = stsb_sentences(args.data / "stsb" / "sts-train.csv", 8000)
    base = embed_all(model, sentences)
    vectors = synthetic(base, args.entries, rng)
    contexts = np.array([context_id(f"bench context {i}") for i in range(CONTEXTS)], dtype=np.uint64)
    ctx = contexts[np.arange(args.entries) % CONTEXTS]
    texts = [f"{sentences[i % len(sentences)]} #{i}" for i in range(args.entries)]
    keys = [f"{i:040x}" for i in range(args.entries)]
    gc.collect()
    before = rss_mb()
    index = VectorIndex(args.entries + 10_000, vectors.shape[1])
    started = time.perf_counter()
    for lo in range(0, args.entries, 50_000):
        hi = min(args.entries, lo + 50_000)
        index.add_many(vectors[lo:hi], ctx[lo:hi], keys[lo:hi], texts[lo:hi])
    build_s = time.perf_counter() - started
    grown = rss_mb() - before
    graph_mb = index._graph.memory_usage / 2**20
    del vectors, texts, keys
    gc.collect()
    path = home / "semantic.usearch"
    started = time.perf_counter()
    index.save(path)
    save_s = time.perf_counter() - started
    del index
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    loaded = VectorIndex.load(path, args.entries + 10_000, 384)
    load_s = time.perf_counter() - started
    loaded_mb = rss_mb() - before
    assert len(loaded) == args.entries
    del loaded
    gc.collect()
    size = path.stat().st_size / 2**20
    meta = Path(f"{path}.meta.npz").stat().st_size / 2**20
    rows = [
        ["entries", f"{args.entries:,}"],
        ["build (bulk insert, all cores)", f"{build_s:.1f} s ({args.entries / build_s:,.0f} vectors/s)"],
        ["resident memory growth during build", f"{grown:,.0f} MiB (usearch graph + vectors: {graph_mb:,.0f} MiB)"],
        ["save (atomic: temp files + rename)", f"{save_s:.2f} s"],
        ["load", f"{load_s:.2f} s"],
        ["resident memory growth by load (all of the index)", f"{loaded_mb:,.0f} MiB"],
        ["files: graph + entries", f"{size:,.0f} MiB + {meta:,.0f} MiB"],
    ]
    return rows, path


SPINNINGS: tuple[Spinning, ...] = ("in-run", "never", "always")
"""How the ONNX threads of the query embedder and the cross-encoder wait between operators: the
gateway's setting (``in-run``, since 2026-12-06) first, then the two it was chosen over."""


async def latency(args: argparse.Namespace, path: Path) -> list[list[str]]:
    """Lookups through ``SemanticCache`` with MiniLM on a worker thread, for each way of spinning of the
    embedder's and the cross-encoder's ONNX threads (:data:`SPINNINGS`, the gateway's first)."""
    pairs = cal.load_pairs(args.data / "langcache_query_pairs" / "pairs.csv")
    queries = [p.b for p in pairs][: args.queries]
    context = "bench context 0"
    rows: list[list[str]] = []
    runs = [(s, embedder_arithmetic(a, False)) for a in args.embedder_arithmetic for s in args.spinning]
    for spinning, arithmetic in runs:
        thread = ThreadPoolExecutor(max_workers=1)
        embed_times: list[float] = []
        model = MiniLMEmbedder(spin=spinning, arithmetic=arithmetic)
        model.load()

        def embed_sync(texts: list[str], model: MiniLMEmbedder = model, times: list[float] = embed_times) -> FloatArray:
            started = time.perf_counter()
            out = np.stack([e.vector for e in model.embed(list(texts))])
            times.append(time.perf_counter() - started)
            return out

        async def embed(texts: list[str], thread: ThreadPoolExecutor = thread) -> FloatArray:
            return await asyncio.get_running_loop().run_in_executor(thread, embed_sync, texts)

        started = time.perf_counter()
        config = SemanticCacheConfig(  # the defaults, but for --arithmetic
            enabled=True, index_path=str(path), max_entries=args.entries + 10_000, arithmetic=args.arithmetic
        )
        semantic = SemanticCache(config, embed, spinning=spinning)  # the cross-encoder's threads wait so too
        open_s = time.perf_counter() - started
        for i, pair in enumerate(pairs):  # the stored side of each pair, in the measured context
            await semantic.add(context, pair.a, f"{10**12 + i:040x}")
        assert semantic.check is not None and semantic.check.load()
        floor = semantic.check.cosine_floor
        for text in queries[:20]:  # warm-up
            await semantic.lookup(context, text)
        embed_times.clear()
        totals: list[float] = []
        cpu: list[float] = []
        searches: list[float] = []
        encoder: list[float] = []
        hits = 0
        for text in queries:
            started, cpu_started = time.perf_counter(), time.process_time()
            hit = await semantic.lookup(context, text)
            totals.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            hits += hit is not None
            vector = np.stack([e.vector for e in model.embed([text])])[0]
            t0 = time.perf_counter()
            found = semantic.index.search(vector, context_id(context), floor)
            searches.append(time.perf_counter() - t0)
            if found:
                t0 = time.perf_counter()
                semantic.check.decide(text, [(c.text, c.similarity) for c in found], semantic.check.accept)
                encoder.append(time.perf_counter() - t0)
        label = f"ONNX threads spin {spinning}" + (" (the default)" if spinning == SPINNINGS[0] else "")
        label += f", embedder in {arithmetic}"
        n = str(len(queries))
        rows += [
            [f"lookup at the defaults, wall ({label})", pct(totals, 50), pct(totals, 99), n],
            [f"lookup at the defaults, process CPU ({label})", pct(cpu, 50), pct(cpu, 99), n],
            [f"embedding alone ({label})", pct(embed_times, 50), pct(embed_times, 99), n],
            ["search alone (HNSW top-32 + context filter)", pct(searches, 50), pct(searches, 99), n],
            [f"gates + cross-encoder + verifier alone, lookups with a candidate ({label})", pct(encoder, 50),
             pct(encoder, 99), str(len(encoder))],
            [f"SemanticCache open (index load; {label})", f"{open_s * 1000:.0f}", "", f"hits: {hits}/{len(queries)}"],
        ]  # fmt: skip
        semantic.close()
        model.close()
        thread.shutdown()
    return rows


def quality(args: argparse.Namespace, model: MiniLMEmbedder) -> list[list[str]]:
    sets = {
        "LangCache pairs": args.data / "langcache_query_pairs" / "pairs.csv",
        "STS-B train (calibration set)": args.data / "stsb" / "sts-train.csv",
        "STS-B dev": args.data / "stsb" / "sts-dev.csv",
        "STS-B test": args.data / "stsb" / "sts-test.csv",
    }
    t = DEFAULT_SEMANTIC_THRESHOLD
    rows: list[list[str]] = []
    check = ModelCheck(None, None, None)
    assert check.load()
    for name, path in sets.items():
        pairs = cal.load_pairs(path)
        sims = cal.similarities(lambda texts: embed_all(model, texts), pairs)
        decisions = cal.decisions(lambda texts: embed_all(model, texts), pairs, check)
        d = cal.curve(pairs, decisions, False, [check.accept])[0]
        held_out = "held out" if "dev" in name or "test" in name else "trained on"
        rows.append([name, f"{sum(p.label for p in pairs)}/{len(pairs)}", f"default matcher ({held_out})",
                     "-" if d.precision is None else f"{d.precision:.3f}", f"{d.recall:.3f}",
                     f"{d.tp}/{d.accepted}", str(d.fp)])  # fmt: skip
        positives = sum(p.label for p in pairs)
        for label, verify in (("cosine 0.90", False), ("cosine 0.90 + word check", True)):
            p = cal.curve(pairs, sims, verify, [t])[0]
            precision = "-" if p.precision is None else f"{p.precision:.3f}"
            rows.append(
                [
                    name,
                    f"{positives}/{len(pairs)}",
                    label,
                    precision,
                    f"{p.recall:.3f}",
                    f"{p.tp}/{p.accepted}",
                    str(p.fp),
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=346)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--arithmetic", choices=["auto", "int8", "float32"], default="auto", help="the cross-encoder's (default: auto)"
    )
    parser.add_argument(
        "--spinning", nargs="+", choices=SPINNINGS, default=list(SPINNINGS), help="thread waits to time (default: all)"
    )
    parser.add_argument(
        "--embedder-arithmetic", nargs="+", choices=["auto", "float32", "int8"], default=["auto"],
        help="the query embedder's, each timed (default: auto, the gateway's choice without a learned router)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "cache" / "results-semantic.md")
    args = parser.parse_args()
    model = MiniLMEmbedder()
    model.load()
    with tempfile.TemporaryDirectory(prefix="tokenomy-semantic-bench-") as tmp:
        index_rows, path = build(args, model, Path(tmp))
        latency_rows = asyncio.run(latency(args, path))
    quality_rows = quality(args, model)
    report = "\n\n".join(
        [
            "# Semantic cache benchmark",
            f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; default settings (verify: model).",
            "## Index at size\n\n" + table(["", "value"], index_rows),
            "## Lookup latency (ms)\n\n" + table(["", "p50 [95 % interval]", "p99 [95 % interval]", "n"], latency_rows),
            "## Precision and recall\n\n"
            + table(["pairs", "same/all", "accept by", "precision", "recall", "tp/accepted", "fp"], quality_rows),
        ]
    )
    print(report)
    args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
