"""Benchmark the dashboard's API on a synthetic SQLite ledger (default 1,000,000 records).

    PYTHONPATH=src .venv/bin/python bench/dashboard/run.py [--records 1000000] [--keep DIR]

Fills the ledger with the report benchmark's records (8 tasks, 5 models, 21 keys, 30 days), then times
each API document as the gateway builds it (the query and JSON assembly, in process, no HTTP), as the
admin (every tenant) and over the last 24 hours and the whole 30 days. Prints a markdown table with the
best and the median of ``--repeat`` runs, wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from report import fill

from tokenomy.config import parse_config
from tokenomy.dashboard import api, explorer
from tokenomy.dashboard.explorer import Filters
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.reports.model import Window

MODELS = """models:
  - name: gpt-4o-mini
    deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o-mini}]
  - name: gpt-4o
    deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o}]
"""


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, float, float, int]:
    walls, cpus, size = [], [], 0
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        size = len(orjson.dumps(fn()))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), statistics.median(walls), statistics.median(cpus), size


def main() -> None:
    """Fill the ledger, time each API document, print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="reuse or keep the ledger in this directory")
    opts = parser.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="tokenomy-dashboard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ledger = work / "ledger.db"
        if not ledger.exists():
            print(f"filling {ledger} with {opts.records:,} records ...", file=sys.stderr)
            print(f"filled in {fill(ledger, opts.records):.1f} s", file=sys.stderr)
        store, config = SqliteStore(ledger), parse_config(MODELS)
        now = time.time()
        print(f"| document ({opts.records:,} records, SQLite) | window | best s | median s | CPU s | bytes |")
        print("|---|---|---:|---:|---:|---:|")
        for label, window in (("24 h", Window(now - 86400, None)), ("30 days", Window())):
            cases: dict[str, Callable[[], Any]] = {
                "overview": lambda w=window: api.overview(store, w),
                "advice": lambda w=window: api.advice(store, config, w),
                "requests (page of 50)": lambda w=window: api.requests(store, w, Filters(), 50, 0),
                "requests task=rag status=error": lambda w=window: api.requests(
                    store, w, Filters(task="rag", status="error"), 50, 0
                ),
                "choices": lambda w=window: explorer.choices(store, w),
            }
            for name, fn in cases.items():
                best, median, cpu, size = _time(fn, opts.repeat)
                print(f"| {name} | {label} | {best:.3f} | {median:.3f} | {cpu:.3f} | {size:,} |", flush=True)
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
