"""The load generator spread over several processes, merged into one run.

One Python process streams about 4,000 short requests per second of its own CPU (see the
benchmarks page), but on a busy machine, or for faster engines, one core is not enough. With
``processes`` > 1 the requests are dealt round-robin to that many generator processes, each
running :func:`tokenomy.planning.loadgen.run` on its share: open loop at ``rate / processes``
(the sum of independent Poisson processes is a Poisson process at the summed rate), closed loop
with the concurrency split between them. The processes start together at an agreed wall-clock
instant; timestamps are ``perf_counter`` (the system's monotonic clock on Linux, shared by all
processes), so the merged run's figures are computed as for one process. The merged
``cpu_share`` is the busiest process's, since saturation is per core.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from tokenomy.planning import loadgen
from tokenomy.planning.loadgen import LoadResult, RequestResult, Target
from tokenomy.planning.workload import BenchRequest

_START_DELAY_S = 3.0
"""How far ahead the common start is set: long enough for every process to import and connect."""


def _child(
    target: Target,
    requests: list[BenchRequest],
    rate: float | None,
    concurrency: int | None,
    duration_s: float | None,
    seed: int,
    start_at: float,
) -> LoadResult:
    wait = start_at - time.time()
    if wait > 0:
        time.sleep(wait)
    return asyncio.run(
        loadgen.run(target, requests, rate=rate, concurrency=concurrency, duration_s=duration_s, seed=seed)
    )


def merge(parts: list[LoadResult]) -> LoadResult:
    """One run from several processes' runs (wall time from the first send to the last answer)."""
    results = [r for part in parts for r in part.results]
    if results:
        wall = max(r.end for r in results) - min(r.start for r in results)
    else:
        wall = max((p.duration_s for p in parts), default=0.0)
    return LoadResult(
        results,
        wall,
        [x for p in parts for x in p.send_lateness_ms],
        [x for p in parts for x in p.loop_lag_ms],
        max((p.cpu_share for p in parts), default=0.0),
        sum(p.cpu_s for p in parts),
    )


async def run(
    target: Target,
    requests: list[BenchRequest],
    *,
    processes: int = 1,
    rate: float | None = None,
    concurrency: int | None = None,
    duration_s: float | None = None,
    seed: int = 0,
    on_done: Callable[[RequestResult], None] | None = None,
) -> LoadResult:
    """As :func:`tokenomy.planning.loadgen.run`, from ``processes`` generator processes.

    With more than one process, ``on_done`` is called for every request once all have finished.
    """
    if concurrency is not None:
        processes = min(processes, concurrency)
    if processes <= 1:
        return await loadgen.run(
            target, requests, rate=rate, concurrency=concurrency, duration_s=duration_s, seed=seed, on_done=on_done
        )
    shares = [requests[i::processes] for i in range(processes)]
    rates = [None if rate is None else (math.inf if math.isinf(rate) else rate / processes)] * processes
    if concurrency is None:
        concurrencies: list[int | None] = [None] * processes
    else:
        concurrencies = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    start_at = time.time() + _START_DELAY_S
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            loop.run_in_executor(
                pool, _child, target, shares[i], rates[i], concurrencies[i], duration_s, seed + i, start_at
            )
            for i in range(processes)
        ]
        parts = list(await asyncio.gather(*futures))
    merged = merge(parts)
    if on_done is not None:
        for result in merged.results:
            on_done(result)
    return merged
