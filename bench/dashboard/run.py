"""Benchmark the dashboard's API on a synthetic ledger (default 1,000,000 records), SQLite and PostgreSQL.

    PYTHONPATH=src .venv/bin/python bench/dashboard/run.py [--records 1000000] [--keep DIR] [--store sqlite]

Fills the ledger with the report benchmark's records (8 tasks, 5 models, 21 keys, 30 days), then times
each API document as the gateway builds it (the query and JSON assembly, in process, no HTTP), as the
admin (every tenant) and over the last 24 hours and the whole 30 days (the budgets panel reads the budget
store, not the ledger, and is not timed). Prints a markdown table with the
best and the median of ``--repeat`` runs: wall seconds, CPU seconds of this process, and for PostgreSQL
the CPU seconds its server processes spent (read from /proc with psutil, ended backends included), whose
sum with this process's is the work a call costs however loaded the machine is. PostgreSQL is a
throwaway server on loopback (the test suite's, durability off) holding the same records, vacuumed and
analysed after the fill as autovacuum leaves an insert-only table.

An existing SQLite ledger kept with ``--keep`` is migrated to the current schema when opened.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench" / "ledger"), str(ROOT)]
from report import BATCH, fill, synthetic  # noqa: E402
from tests.support.postgres import FAST, PostgresServer  # noqa: E402

from tokenomy.config import parse_config  # noqa: E402
from tokenomy.dashboard import api, explorer  # noqa: E402
from tokenomy.dashboard.explorer import Filters  # noqa: E402
from tokenomy.ledger.stores.base import LedgerStore  # noqa: E402
from tokenomy.ledger.stores.postgres import PostgresStore  # noqa: E402
from tokenomy.ledger.stores.sqlite import SqliteStore  # noqa: E402
from tokenomy.reports.model import Window  # noqa: E402

MODELS = """models:
  - name: gpt-4o-mini
    deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o-mini}]
  - name: gpt-4o
    deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o}]
"""


def _server_cpu(pid: int | None) -> float:
    """CPU seconds of a server process and its children, ended ones included (0 without a server)."""
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _time(fn: Callable[[], Any], repeat: int, server: int | None) -> tuple[float, float, float, float, int]:
    walls, cpus, servers, size = [], [], [], 0
    for _ in range(repeat):
        wall, cpu, other = time.perf_counter(), time.process_time(), _server_cpu(server)
        size = len(orjson.dumps(fn()))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        servers.append(_server_cpu(server) - other)
    return min(walls), statistics.median(walls), statistics.median(cpus), statistics.median(servers), size


def main() -> None:
    """Fill the ledgers, time each API document, print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="reuse or keep the SQLite ledger in this directory")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    opts = parser.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="tokenomy-dashboard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if opts.store in ("sqlite", "both"):
            ledger = work / "ledger.db"
            if not ledger.exists():
                print(f"filling {ledger} with {opts.records:,} records ...", file=sys.stderr)
                print(f"filled in {fill(ledger, opts.records):.1f} s", file=sys.stderr)
            _table(SqliteStore(ledger), "SQLite", opts, None)
        if opts.store in ("postgres", "both"):
            server = PostgresServer(settings=FAST)
            server.start()
            try:
                with server.database() as dsn:
                    store = PostgresStore(dsn)
                    started = time.perf_counter()
                    batch = []
                    for record in synthetic(opts.records):
                        batch.append(record)
                        if len(batch) == BATCH:
                            store.write(batch)
                            batch.clear()
                    store.write(batch)
                    store.close()
                    print(f"filled PostgreSQL in {time.perf_counter() - started:.1f} s", file=sys.stderr)
                    with contextlib.closing(store.connect()) as conn:
                        conn.autocommit = True  # VACUUM runs outside a transaction
                        # what autovacuum does to an insert-only table: statistics and the visibility map
                        # (a database-wide VACUUM right after the fill left the map unset here)
                        conn.execute("VACUUM ANALYZE requests")
                        conn.execute("ANALYZE")
                    _table(store, "PostgreSQL", opts, server.pid)
            finally:
                server.destroy()
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _table(store: LedgerStore, name: str, opts: argparse.Namespace, server: int | None) -> None:
    config = parse_config(MODELS)
    store.open()  # migrates a kept ledger to the current schema before anything is timed
    store.close()
    now = time.time()
    print(
        f"\n| document ({opts.records:,} records, {name}) | window | best s | median s | CPU s | server CPU s | bytes |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, window in (("24 h", Window(now - 86400, None)), ("30 days", Window())):
        cases: dict[str, Callable[[], Any]] = {
            "overview": lambda w=window: api.overview(store, w),
            "prompts (top 10)": lambda w=window: api.top_prompts(store, w),
            "advice": lambda w=window: api.advice(store, config, w),
            "requests (page of 50)": lambda w=window: api.requests(store, w, Filters(), 50, 0),
            "requests task=rag status=error": lambda w=window: api.requests(
                store, w, Filters(task="rag", status="error"), 50, 0
            ),
            "choices": lambda w=window: explorer.choices(store, w),
            "record (one, by id)": lambda w=window: explorer.record(store, w, "r500000", with_prompt=True),
            f"requests.csv (up to {api.CSV_LIMIT:,} rows)": lambda w=window: api.requests_csv(store, w, Filters()),
        }
        for case, fn in cases.items():
            best, median, cpu, server_cpu, size = _time(fn, opts.repeat, server)
            other = f"{server_cpu:.3f}" if server is not None else "-"
            print(f"| {case} | {label} | {best:.3f} | {median:.3f} | {cpu:.3f} | {other} | {size:,} |", flush=True)


if __name__ == "__main__":
    main()
