"""Gateway success rate and latency while one of three deployments fails every request.

A gateway process (``tokenomy serve``) in front of three fake OpenAI upstreams (the aiohttp fakes of
``tests/fakes``, in this process), one of which fails every request: HTTP 500, a refused
connection, or a reply slower than the deployment's timeout. An open-loop load generator sends
chat completions at a fixed rate; each row is one routing setting. Prints a markdown table.

    .venv/bin/python bench/routing/failover.py [--rate 200] [--duration 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def start_gateway(text: str, work: Path) -> tuple[asyncio.subprocess.Process, str]:
    path = work / "gateway.yaml"
    path.write_text(text)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *[str(ROOT / ".venv/bin/tokenomy"), "serve", "--config", str(path), "--port", str(port)],
        env={**os.environ, "TOKENOMY_HOME": str(work)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("the gateway did not start")


async def load(url: str, rate: int, duration: float) -> tuple[list[float], int]:
    """Send ``rate`` requests per second for ``duration`` s (open loop); return (latencies of 200s in ms, total)."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(i: int) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]}
            start = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
                    await resp.read()
                    if resp.status == 200:
                        latencies.append((time.perf_counter() - start) * 1000)
            except aiohttp.ClientError:
                pass

        total = int(rate * duration)
        t0 = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies, total


async def bad_attempts(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    pattern = r'tokenomy_route_attempts_total\{deployment="d0",outcome="[^"]+"\} ([0-9.e+]+)'
    return int(sum(float(m) for m in re.findall(pattern, text)))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


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
        latencies, total = await load(url, args.rate, args.duration)
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
