"""Gateway success rate and latency while one of three deployments fails every request.

A gateway process (``tokenomy serve``) in front of three fake OpenAI upstreams (the aiohttp fakes of
``tests/fakes``, in this process), one of which fails every request: HTTP 500, a refused
connection, or a reply slower than the deployment's timeout. An open-loop load generator sends
chat completions at a fixed rate; each row is one routing setting. Prints a markdown table.

    PYTHONPATH=src python bench/routing/failover.py [--rate 200] [--duration 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.gateway_proc import free_port, open_loop, pct, start_gateway  # noqa: E402
from tests.fakes.openai_upstream import OpenAIFake, start_openai_fake  # noqa: E402

SETTINGS = {  # name -> (routing: section, per-model keys)
    "default (failover + circuit breaker)": ("{}", ""),
    "failover only (circuit never opens)": ("{health: {failures_to_open: 1000000}}", ""),
    "circuit breaker only (1 attempt)": ("{}", "retries: {max_attempts: 1}"),
    "neither (1 attempt, circuit never opens)": ("{health: {failures_to_open: 1000000}}", "retries: {max_attempts: 1}"),
    "default, least-busy": ("{}", "strategy: least-busy"),
    "default, lowest-latency": ("{}", "strategy: lowest-latency"),
}
ROWS = [  # (fault, setting)
    ("none", "default (failover + circuit breaker)"),
    *[("500", name) for name in SETTINGS],
    ("refused", "default (failover + circuit breaker)"),
    ("refused", "neither (1 attempt, circuit never opens)"),
    ("timeout", "default (failover + circuit breaker)"),
    ("timeout", "default, least-busy"),
    ("timeout", "default, lowest-latency"),
    ("timeout", "neither (1 attempt, circuit never opens)"),
]
TIMEOUT_S = 1.0


def config(urls: list[str], routing: str, model_keys: str) -> str:
    deps = "\n".join(
        f'      - {{provider: openai, base_url: "{url}", name: d{i}, model: gpt-4o-mini, timeout_s: {TIMEOUT_S}}}'
        for i, url in enumerate(urls)
    )
    keys = f"    {model_keys}\n" if model_keys else ""
    return (
        "cache: {exact: {enabled: false}}\nledger: {enabled: false}\n"
        f"routing: {routing}\nmodels:\n  - name: m\n{keys}    deployments:\n{deps}\n"
    )


def _question(i: int) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]}


async def bad_attempts(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    pattern = r'tokenomy_route_attempts_total\{deployment="d0",outcome="[^"]+"\} ([0-9.e+]+)'
    return int(sum(float(m) for m in re.findall(pattern, text)))


async def run_row(fault: str, setting: str, args: argparse.Namespace, work: Path) -> str:
    fakes: list[OpenAIFake] = [await start_openai_fake(delay=5.0) for _ in range(3)]
    urls = [fake.base_url for fake in fakes]
    if fault == "500":
        fakes[0].mode = "error_500"
    elif fault == "timeout":
        fakes[0].mode = "slow"
    elif fault == "refused":
        urls[0] = f"http://127.0.0.1:{free_port()}/v1"
    routing, keys = SETTINGS[setting]
    proc, url = await start_gateway(config(urls, routing, keys), work)
    try:
        latencies, total = await open_loop(f"{url}/v1/chat/completions", args.rate, args.duration, _question)
        attempts = await bad_attempts(url)
    finally:
        proc.terminate()
        await proc.wait()
        for fake in fakes:
            await fake.close()
    ok = len(latencies)
    return (
        f"| {fault} | {setting} | {total} | {100.0 * ok / total:.2f}% | {pct(latencies, 0.5):.1f} | "
        f"{pct(latencies, 0.99):.1f} | {attempts} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=200, help="requests per second")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per row")
    args = parser.parse_args()
    print(
        f"Failover: 3 deployments (round-robin unless named), deployment d0 failing every request; "
        f"{args.rate} rps open loop, {args.duration:g} s per row; timeout_s {TIMEOUT_S:g}; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Latency of successful requests, send to last byte.\n"
    )
    print("| d0 fault | routing | requests | success | p50 ms | p99 ms | attempts on d0 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="tokenomy-failover-") as tmp:
        for fault, setting in ROWS:
            print(await run_row(fault, setting, args, Path(tmp)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
