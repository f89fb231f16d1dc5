"""Benchmark ``tokenomy report`` over a synthetic SQLite ledger (default 1,000,000 records).

    .venv/bin/python bench/ledger/report.py [--records 1000000] [--keep DIR]

Fills a temporary ledger through ``SqliteStore.write`` with realistic records (8 tasks, 5 models,
7 languages, 21 keys, ~1% errors, 30 days), then times the command end to end in a subprocess
and the query part alone in-process, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.reports.model import ReportQuery, Sections, Window
from tokenomy.reports.query import run_query

TASKS = ("chat", "summarize", "classify", "extract", "translate", "code", "rag", "agent")
TASK_P = (0.30, 0.15, 0.12, 0.10, 0.08, 0.10, 0.10, 0.05)
# served model, $ per 1M input tokens, $ per 1M output tokens
MODELS = (
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.0),
    ("claude-3-5-haiku-latest", 0.80, 4.0),
    ("smollm2-135m-instruct", 0.0, 0.0),
    ("llama-3.1-8b-instruct", 0.05, 0.08),
)
MODEL_P = (0.45, 0.15, 0.15, 0.15, 0.10)
LANGUAGES = ("en", "fr", "de", "es", "ja", "zh", None)
LANGUAGE_P = (0.55, 0.10, 0.08, 0.10, 0.05, 0.07, 0.05)
KEYS = (*(f"team-{i}" for i in range(20)), None)
ERRORS = (400, 429, 500, 502)
BATCH = 50_000


def synthetic(n: int, *, seed: int = 7, now: float | None = None, days: int = 30) -> Iterator[LedgerRecord]:
    """``n`` records spread over the last ``days`` days, generated in vectorised batches."""
    rng = np.random.default_rng(seed)
    end = time.time() if now is None else now
    hashes = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(50_000)]
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        ts = end - rng.random(m) * days * 86400
        task = rng.choice(len(TASKS), m, p=TASK_P)
        model = rng.choice(len(MODELS), m, p=MODEL_P)
        lang = rng.choice(len(LANGUAGES), m, p=LANGUAGE_P)
        key = rng.integers(0, len(KEYS), m)
        failed = rng.random(m) < 0.01
        status = np.where(failed, rng.choice(ERRORS, m), 200)
        prompt = np.where(failed, 0, rng.lognormal(6.0, 1.0, m).astype(np.int64) + 1)
        completion = np.where(failed, 0, rng.lognormal(4.5, 0.8, m).astype(np.int64))
        latency = rng.lognormal(6.3, 0.6, m) + completion * 8.0
        hit = (rng.random(m) < 0.12) & ~failed
        routed = rng.random(m) < 0.25
        compressed = rng.random(m) < 0.2
        prompt_pick = rng.zipf(1.1, m) % len(hashes)
        for i in range(m):
            name, pin, pout = MODELS[model[i]]
            p, c = int(prompt[i]), int(completion[i])
            full = (p * pin + c * pout) / 1e6
            saved_routing = full * 0.6 if routed[i] else 0.0
            saved_compression = p * 0.3 * pin / 1e6 if compressed[i] else 0.0
            baseline = full + saved_routing + saved_compression
            cost = 0.0 if hit[i] else full
            saved_cache = baseline - cost if hit[i] else 0.0
            yield LedgerRecord(
                request_id=f"r{start + i}",
                ts=float(ts[i]),
                api_key=KEYS[key[i]],
                task=TASKS[task[i]],
                requested_model="default",
                served_model=name,
                provider="openai",
                status=int(status[i]),
                error_type=None if status[i] < 400 else "upstream_error",
                prompt_tokens=p,
                completion_tokens=c,
                token_source="provider",
                language=LANGUAGES[lang[i]],
                latency_ms=float(latency[i]),
                cache="hit-exact" if hit[i] else "miss",
                price_source="genai-prices",
                cost_usd=cost,
                baseline_cost_usd=baseline,
                saved_cache_usd=saved_cache,
                saved_routing_usd=0.0 if hit[i] else saved_routing,
                saved_compression_usd=0.0 if hit[i] else saved_compression,
                prompt_hash=hashes[prompt_pick[i]],
            )


def fill(path: Path, n: int) -> float:
    """Write ``n`` synthetic records to a SQLite ledger at ``path``; returns the seconds taken."""
    started = time.perf_counter()
    store = SqliteStore(path)
    store.open()
    batch: list[LedgerRecord] = []
    for record in synthetic(n):
        batch.append(record)
        if len(batch) == BATCH:
            store.write(batch)
            batch.clear()
    if batch:
        store.write(batch)
    store.close()
    return time.perf_counter() - started


def _timed(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr.decode()}")
    return elapsed


def _query_time(store: SqliteStore, query: ReportQuery) -> float:
    started = time.perf_counter()
    run_query(store, query)
    return time.perf_counter() - started


def main() -> None:
    """Fill the ledger, run the cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the best is reported)")
    parser.add_argument("--keep", type=Path, default=None, help="reuse or keep the ledger in this directory")
    opts = parser.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="tokenomy-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        _bench(work, opts)
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _bench(work: Path, opts: argparse.Namespace) -> None:
    ledger = work / "ledger.db"
    if not ledger.exists():
        print(f"filling {ledger} with {opts.records:,} records ...", file=sys.stderr)
        print(f"filled in {fill(ledger, opts.records):.1f} s", file=sys.stderr)
    config = work / "tokenomy.yaml"
    config.write_text(
        f"ledger: {{store: sqlite, path: '{ledger}'}}\n"
        "models:\n  - name: m\n    deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: m}]\n"
    )
    table = Sections(economy=True, top_prompts=10)
    html = Sections(economy=True, series=True, top_prompts=10)
    week = Window(since=time.time() - 7 * 86400)
    cases: list[tuple[str, list[str], ReportQuery]] = [
        ("`--by task` (table)", ["--by", "task"], ReportQuery(by="task", sections=table)),
        ("`--by task --format json`", ["--by", "task", "--format", "json"], ReportQuery(by="task")),
        ("`--by day --format json`", ["--by", "day", "--format", "json"], ReportQuery(by="day")),
        (
            "`--by model --since 7d --format json`",
            ["--by", "model", "--since", "7d", "--format", "json"],
            ReportQuery(by="model", window=week),
        ),
        ("`--format html` (all sections, 4 plots)", ["--format", "html"], ReportQuery(by="task", sections=html)),
    ]
    cli = [sys.executable, "-m", "tokenomy.cli", "report", "--config", str(config), "--out", str(work / "out")]
    with contextlib.closing(SqliteStore(ledger).connect()) as conn:
        total = int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    store = SqliteStore(ledger)
    print(
        f"\nledger: {ledger} ({ledger.stat().st_size / 1e6:.0f} MB, {total:,} records), "
        f"{os.cpu_count()} CPUs; best of {opts.repeat} after one warm-up run\n"
    )
    print("| case | end to end (s) | query only (s) | records |")
    print("|---|---|---|---|")
    for name, args, query in cases:
        _timed([*cli, *args])  # warm the page cache
        whole = min(_timed([*cli, *args]) for _ in range(opts.repeat))
        part = min(_query_time(store, query) for _ in range(opts.repeat))
        print(f"| {name} | {whole:.2f} | {part:.2f} | {total:,} |", flush=True)


if __name__ == "__main__":
    main()
