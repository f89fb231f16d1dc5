"""Ledger store write throughput: PostgreSQL (binary COPY + ON CONFLICT) versus SQLite.

One command: ``.venv/bin/python bench/ledger/pg_write.py [--records N] [--batch 1000 --batch 5000]``.
It starts its own PostgreSQL on loopback (durability on: the server's default fsync and
synchronous_commit), writes N realistic records per run through ``store.write`` in batches,
each run into a fresh database / file, and prints a markdown table. Records are built before the
clock starts; the time covers what the ledger writer thread pays: row conversion, transfer, commit.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.postgres import PostgresServer  # noqa: E402

from tokenomy.ledger.record import LedgerRecord  # noqa: E402
from tokenomy.ledger.stores.base import LedgerStore  # noqa: E402
from tokenomy.ledger.stores.postgres import PostgresStore  # noqa: E402
from tokenomy.ledger.stores.sqlite import SqliteStore  # noqa: E402


def records(n: int) -> list[LedgerRecord]:
    """Records shaped like real traffic (every routine column filled, no prompt text)."""
    now = time.time()
    return [
        LedgerRecord(
            request_id=f"req_{i:012x}",
            ts=now + i / 1000,
            api_key=f"team-{i % 7}",
            tenant="default",
            end_user=f"user-{i % 113}",
            task=("chat", "summarise", "classify")[i % 3],
            requested_model="fast",
            served_model="gpt-4o-mini",
            deployment="openai/gpt-4o-mini",
            provider="openai",
            stream=i % 2 == 0,
            status=200,
            prompt_tokens=100 + i % 900,
            completion_tokens=20 + i % 300,
            cached_tokens=i % 64,
            token_source="provider",
            language="en",
            latency_ms=120.5 + i % 50,
            ttft_ms=30.25,
            cache="miss",
            route="round-robin:openai/gpt-4o-mini",
            price_source="genai-prices",
            cost_usd=1.2e-4,
            baseline_cost_usd=2.5e-4,
            saved_routing_usd=1.3e-4,
            prompt_hash=f"{i:064x}",
        )
        for i in range(n)
    ]


def run(store: LedgerStore, batch: list[LedgerRecord], size: int) -> float:
    """Seconds to write ``batch`` in chunks of ``size``; checks every record landed once."""
    store.open()
    started = time.perf_counter()
    for start in range(0, len(batch), size):
        store.write(batch[start : start + size])
    elapsed = time.perf_counter() - started
    conn = store.connect()
    try:
        stored = conn.execute("SELECT count(DISTINCT request_id), count(*) FROM requests").fetchone()
    finally:
        conn.close()
        store.close()
    assert tuple(stored) == (len(batch), len(batch)), stored
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable); default 1000 and 5000")
    args = parser.parse_args()
    sizes: list[int] = args.batch or [1000, 5000]
    batch = records(args.records)
    server = PostgresServer(settings={})  # the server's durable defaults
    server.start()
    results: list[tuple[str, int, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tokenomy-bench-") as tmp:
            for size in sizes:
                with server.database() as dsn:
                    results.append(("postgres", size, run(PostgresStore(dsn), batch, size)))
                results.append(("sqlite", size, run(SqliteStore(Path(tmp) / f"ledger-{size}.db"), batch, size)))
    finally:
        server.destroy()
    print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, PostgreSQL {server.bin.parent.name} "
        "(fsync and synchronous_commit on), SQLite (WAL, synchronous=NORMAL)\n"
    )
    print("| store | batch size | records | seconds | records/s |")
    print("|---|---:|---:|---:|---:|")
    n = len(batch)
    for store, size, seconds in results:
        print(f"| {store} | {size} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} |")


if __name__ == "__main__":
    main()
