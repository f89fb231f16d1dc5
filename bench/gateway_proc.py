"""Helpers the gateway benchmarks share: a ``tokenomy serve`` subprocess and an open-loop load.

Import with the repository root on ``sys.path`` (``from bench.gateway_proc import ...``); the
gateway process is the tests' (``tests/support/serve_process.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.ports import free_port
from tests.support.serve_process import start_serve

__all__ = ["free_port", "open_loop", "pct", "start_gateway"]


async def start_gateway(text: str, work: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Write config ``text`` into ``work`` and run ``tokenomy serve`` on it (one worker process, logs
    discarded, home ``work``) until it is healthy; returns the process and the gateway's base URL."""
    path = work / "gateway.yaml"
    path.write_text(text)
    return await start_serve(path, work, output=asyncio.subprocess.DEVNULL)


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
