#!/usr/bin/env python3
"""What shadow traffic costs the request path: client latency with shadow copies off and on.

A gateway process (``tokenomy serve``, SQLite ledger with stored prompts) in front of a fake OpenAI
upstream (``tests/fakes``, in this process, answering at once). An open-loop load generator sends
chat completions for task ``qa`` at a fixed rate; the rows differ only in the ``shadow`` rule for
that task (off; 5% of requests copied; every request copied, of which at most 4 run at once and
the rest are dropped). Reported: client latency (send to last byte) p50/p99 of the production
requests, the gateway's CPU-ms per production request (from /proc, stable on a busy machine), and
the copies that were sent. Prints a markdown table:

    PYTHONPATH=src python bench/eval/shadow_overhead.py [--rate 200] [--duration 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.gateway_proc import open_loop, pct, start_gateway  # noqa: E402
from tests.fakes.openai_upstream import OpenAIFake  # noqa: E402

ROWS = [("off", None), ("5% copied", 0.05), ("every request copied", 1.0)]
TICK = os.sysconf("SC_CLK_TCK")


def config(url: str, ledger: Path, sample: float | None) -> str:
    text = f"""
cache: {{exact: {{enabled: false}}}}
ledger: {{path: "{ledger}", store_prompts: true}}
models:
  - {{name: big, deployments: [{{provider: openai, base_url: "{url}", model: big-up,
      pricing: {{input_per_mtok: 10, output_per_mtok: 30}}}}]}}
  - {{name: small, deployments: [{{provider: openai, base_url: "{url}", model: small-up,
      pricing: {{input_per_mtok: 1, output_per_mtok: 1}}}}]}}
"""
    if sample is not None:
        text += f"shadow:\n  - {{task: qa, model: big, candidate: small, sample: {sample}, max_usd_per_day: 1000}}\n"
    return text


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _question(i: int) -> dict[str, Any]:
    return {"model": "big", "messages": [{"role": "user", "content": f"question {i}"}]}


async def load(url: str, rate: int, duration: float) -> list[float]:
    latencies, _ = await open_loop(f"{url}/v1/chat/completions", rate, duration, _question, {"x-tokenomy-task": "qa"})
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description="shadow traffic overhead")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    lines = []
    async with OpenAIFake() as fake:
        await fake.start()
        for name, sample in ROWS:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                proc, url = await start_gateway(config(fake.base_url, work / "ledger.db", sample), work)
                try:
                    await load(url, args.rate, 1.0)  # warm up
                    cpu0 = cpu_s(proc.pid)
                    latencies = await load(url, args.rate, args.duration)
                    await asyncio.sleep(1.0)  # copies still running finish
                    cpu = cpu_s(proc.pid) - cpu0
                finally:
                    proc.terminate()
                    await proc.wait()
                conn = sqlite3.connect(work / "ledger.db")
                copies = conn.execute("SELECT count(*) FROM requests WHERE shadow_of IS NOT NULL").fetchone()[0]
                conn.close()
            total = int(args.rate * args.duration)
            lines.append(
                f"| {name} | {len(latencies)}/{total} | {pct(latencies, 0.5):.1f} | {pct(latencies, 0.99):.1f} | "
                f"{cpu / total * 1000:.2f} | {copies} |"
            )
    print(
        f"Shadow traffic overhead: {args.rate} rps open loop, {args.duration:g} s per row (after 1 s warm-up), "
        f"fake upstream answering at once, SQLite ledger with stored prompts; {os.cpu_count()} CPUs (shared), "
        f"Python {platform.python_version()}.\n"
    )
    print("| shadow | ok/sent | p50 ms | p99 ms | gateway CPU ms per request | copies recorded (incl. warm-up) |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
