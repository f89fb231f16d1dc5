#!/usr/bin/env python3
"""Would sign bits speed up the pgvector store's search of one large context? (They do not, here.)

The usearch store searches a context past ``exact_scan_limit`` by its vectors' sign bits first
(docs/semantic-cache.md). This tries the same two stages in SQL on a throwaway PostgreSQL with
pgvector (from the ``pgserver`` package): the codes are a generated ``bit varying`` column that the
server computes from each vector, the first stage orders the context's rows by
``bit_count(code # query)`` and keeps 256, the second compares those exactly. Against it: the
store's exact scan of the context. Half of the table's rows are the one large context, the rest
spread over 50 others (rows of a context arrive interleaved with other contexts')::

    .venv/bin/python bench/cache/pg_sign_bits.py [--entries 200000] [--queries 30] [--index-only]

``--index-only`` puts the codes in the context index's ``INCLUDE`` and turns sequential scans off,
so the first stage reads the index instead of the heap. Prints each way's p50 / max ms (the ways
alternate twice) and how often the two stages' best entry is the exact scan's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from pgvector.psycopg import register_vector  # noqa: E402
from tests.support.postgres import FAST, PostgresServer, pgvector_bin  # noqa: E402

SIGN_BITS = """CREATE FUNCTION sign_bits(v vector) RETURNS bit varying LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT string_agg(CASE WHEN x > 0 THEN '1' ELSE '0' END, '' ORDER BY i)::bit varying
  FROM unnest(v::real[]) WITH ORDINALITY AS u(x, i) $$"""
EXACT = (
    "SELECT label FROM (SELECT label, -(embedding <#> %b) AS sim FROM t WHERE ctx = 1) m "
    "WHERE sim >= 0.6 ORDER BY sim DESC LIMIT 32"
)
TWO_STAGES = (
    "SELECT label FROM (SELECT t.label, -(t.embedding <#> %b) AS sim FROM t JOIN (SELECT label FROM t WHERE ctx = 1 "
    "ORDER BY bit_count(code # %s::bit varying) LIMIT 256) near USING (label)) m WHERE sim >= 0.6 "
    "ORDER BY sim DESC LIMIT 32"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=200_000, help="rows in the table (half in the large context)")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--index-only", action="store_true", help="codes in the context index, sequential scans off")
    args = ap.parse_args()
    if args.entries < 4 or args.queries < 1:
        ap.error("--entries must be at least 4 and --queries at least 1")
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((args.entries, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    server = PostgresServer({**FAST, "shared_buffers": "1GB"}, bin_dir=pgvector_bin("0.6"))
    server.start()
    try:
        with server.database() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
            register_vector(conn)
            conn.execute(SIGN_BITS)
            conn.execute(
                "CREATE TABLE t (label bigserial PRIMARY KEY, ctx bigint, key bytea, text text, embedding vector(384), "
                "code bit varying GENERATED ALWAYS AS (sign_bits(embedding)) STORED)"
            )
            include = " INCLUDE (label, code)" if args.index_only else ""
            conn.execute(f"CREATE INDEX t_ctx ON t (ctx){include}")
            started = time.perf_counter()
            with conn.cursor().copy("COPY t (ctx, key, text, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "bytea", "text", "vector"])
                for i, vector in enumerate(vectors):
                    copy.write_row((1 if i % 2 == 0 else 2 + i % 50, b"k" * 20, f"question {i}", vector))
            load = time.perf_counter() - started
            conn.execute("VACUUM ANALYZE t")
            if args.index_only:
                conn.execute("SET enable_seqscan = off")
                conn.execute("SET max_parallel_workers_per_gather = 0")
            mine = vectors[::2]
            step = max(1, len(mine) // args.queries)
            queries = [mine[j] + 0.05 * rng.standard_normal(384).astype(np.float32) for j in range(0, len(mine), step)]
            queries = queries[: args.queries]
            rows = []
            for name in ("exact scan", "sign bits, then 256 exactly") * 2:
                times, same = [], 0
                for query in queries:
                    code = "".join("1" if x > 0 else "0" for x in query)
                    params: tuple[object, ...] = (query,) if name == "exact scan" else (query, code)
                    sql = EXACT if name == "exact scan" else TWO_STAGES
                    started = time.perf_counter()
                    found = conn.execute(sql, params).fetchall()
                    times.append((time.perf_counter() - started) * 1000)
                    if name != "exact scan":
                        exact = conn.execute(EXACT, (query,)).fetchall()
                        same += bool(found) and bool(exact) and found[0][0] == exact[0][0]
                agree = "-" if name == "exact scan" else f"{same}/{len(queries)}"
                rows.append(f"| {name} | {np.median(times):.2f} | {max(times):.2f} | {agree} |")
    finally:
        server.destroy()
    plan = "index-only first stage" if args.index_only else "the planner free"
    print(f"{args.entries:,} rows ({args.entries // 2:,} in the large context), load {load:.1f} s, {plan}, "
          f"{len(queries)} queries\n")  # fmt: skip
    print("| way | p50 ms | max ms | best entry = exact scan's |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
