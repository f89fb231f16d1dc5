#!/usr/bin/env python3
"""Evaluation throughput: items per second at concurrency 1, 16 and 64 against a fake upstream.

One command, prints a markdown table:

    PYTHONPATH=src python bench/eval/throughput.py [--latency-ms 50] [--items 100,400,800]

The fake OpenAI upstream (tests/fakes) runs in its own process and answers every call after a
fixed delay (``--latency-ms``, the upstream's own time). The evaluation runs as ``tokenomy eval``
does: the gateway in process on loopback (ledger off), streamed calls, the ``exact`` scorer,
results written to a temporary directory (timed: the calls and scoring, not the start-up of the
gateway's process or the report and plot written at the end). Reported per row: items/s (wall), the evaluation
process's CPU-ms per item (gateway + client + scoring; stable on a busy machine, unlike wall time),
and the p50/p95 call latency the evaluation measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import numpy as np  # noqa: E402

from tokenomy.config import parse_config  # noqa: E402
from tokenomy.evaluate.command import EvalOptions, execute  # noqa: E402
from tokenomy.evaluate.dataset import load_dataset  # noqa: E402

UPSTREAM = """
import asyncio, sys
from tests.fakes.openai_upstream import OpenAIFake
async def main():
    fake = await OpenAIFake(mode="slow", delay=float(sys.argv[1])).start()
    print(fake.base_url, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def one_row(url: str, items: int, concurrency: int, work: Path) -> dict[str, float]:
    data = work / f"d{concurrency}.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"item {i}", "expected": f"echo: item {i}"}) + "\n" for i in range(items))
    )
    config = parse_config(
        f"ledger: {{enabled: false}}\nmodels:\n  - {{name: m, deployments: [{{provider: openai, base_url: '{url}', "
        "model: m, pricing: {input_per_mtok: 1, output_per_mtok: 1}}]}\n"
    )
    opts = EvalOptions(
        models=["m"], scorer="exact", out=work / f"run{concurrency}", config=config, concurrency=concurrency
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run = await execute(load_dataset(data).items, str(data), opts, None)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    results = list(run.state.results.values())
    assert len(results) == items and all(r.score == 1.0 for r in results)
    latency = [r.latency_ms for r in results]
    return {
        "items": items,
        "c": concurrency,
        "items_s": items / wall,
        "cpu_ms": cpu / items * 1000,
        "p50": float(np.percentile(latency, 50)),
        "p95": float(np.percentile(latency, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--items", default="100,400,800", help="items at concurrency 1,16,64")
    args = parser.parse_args()
    counts = [int(x) for x in args.items.split(",")]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, str(args.latency_ms / 1000)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for items, conc in zip(counts, (1, 16, 64), strict=True):
                rows.append(asyncio.run(one_row(url, items, conc, Path(tmp))))
    finally:
        proc.terminate()
        proc.wait()
    print(
        f"Evaluation throughput: fake upstream answering after {args.latency_ms:g} ms, gateway in process, "
        f"`exact` scorer; {os.cpu_count()} CPUs (shared), Python {platform.python_version()}.\n"
    )
    print("| concurrency | items | items/s | CPU ms per item | p50 call ms | p95 call ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['c']} | {r['items']} | {r['items_s']:.1f} | {r['cpu_ms']:.2f} | {r['p50']:.1f} | {r['p95']:.1f} |")


if __name__ == "__main__":
    main()
