"""Helpers the gateway benchmarks share: a ``tokenomy serve`` subprocess and an open-loop load.

Import with the repository root on ``sys.path`` (``from bench.gateway_proc import ...``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_gateway(text: str, work: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Write config ``text`` into ``work`` and run ``tokenomy serve`` on it until ``/readyz`` answers 200.

    The gateway's home (``TOKENOMY_HOME``) is ``work``; its source is this checkout's ``src``.
    Returns the process and the gateway's base URL.
    """
    path = work / "gateway.yaml"
    path.write_text(text)
    port = free_port()
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tokenomy.cli", "serve", "--config", str(path), "--port", str(port)],
        env={**os.environ, "TOKENOMY_HOME": str(work), "PYTHONPATH": pythonpath},
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


async def open_loop(
    url: str,
    rate: float,
    duration: float,
    body: Callable[[int], dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> tuple[list[float], int]:
    """POST ``body(i)`` to ``url`` at ``rate`` per second for ``duration`` s, each on schedule.

    Returns the latencies (ms, send to last byte) of the 200 answers and how many were sent;
    connection errors count as failures.
    """
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(i: int) -> None:
            start = time.perf_counter()
            try:
                async with session.post(url, json=body(i), headers=headers) as resp:
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


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` (nearest rank; NaN when empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")
