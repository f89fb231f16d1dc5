"""The load generator's own accuracy and limits, against the fake engine in a separate process.

One command: ``PYTHONPATH=src:. python bench/planning/run.py`` prints two tables.

1. Accuracy: reported TTFT/TPOT p50 against the engine's known timings (first token after
   200 ms, then one every 20 ms), at several Poisson rates. The engine also reports how late it
   really wrote each first token (its timer's own lateness), so the generator's error is
   ``reported TTFT - 200 ms - engine lateness``.
2. Capacity: offered rates with short streams (first token at once, 4 tokens 1 ms apart) to find
   where the generator, on one core, stops keeping its schedule (send lateness, loop lag, CPU).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import uvloop

from tokenomy.planning import loadgen, workload
from tokenomy.planning.metrics import summarize


def _engine(ttft_ms: float, itl_ms: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "tests.fakes.engine", "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _stats(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/fake/stats") as resp:
        data: dict[str, float] = json.load(resp)
    return data


async def _accuracy() -> list[str]:
    proc, url = _engine(200, 20)
    rows = []
    try:
        for rate in (5.0, 20.0, 50.0):
            _stats(url)  # reset the engine's lateness record
            n = int(rate * 6)
            reqs = workload.synthetic("in=64,out=32", n)
            run = await loadgen.run(loadgen.Target(url + "/v1", "fake-llm"), reqs, rate=rate, seed=1)
            s = summarize(f"rate={rate:g}/s", run, {})
            late = _stats(url)["first_token_lateness_ms_p50"] or 0.0
            assert s.ttft.p50 is not None and s.tpot.p50 is not None
            rows.append(
                f"| {rate:g}/s | {s.succeeded} | {s.ttft.p50:.2f} | {late:.2f} | {s.ttft.p50 - 200 - late:+.2f} "
                f"| {s.tpot.p50:.3f} | {s.tpot.p50 - 20:+.3f} | {s.itl.p50:.2f} | {s.client_cpu_share:.0%} |"
            )
    finally:
        proc.terminate()
    return rows


async def _capacity() -> list[str]:
    proc, url = _engine(0, 1)
    rows = []
    try:
        for rate in (250.0, 500.0, 1000.0, 1500.0):
            n = int(rate * 3)
            reqs = workload.synthetic("in=8,out=4", n)
            run = await loadgen.run(loadgen.Target(url + "/v1", "fake-llm"), reqs, rate=rate, seed=2)
            s = summarize(f"rate={rate:g}/s", run, {})
            cpu_ms = run.cpu_share * run.duration_s * 1000 / max(1, len(run.results))
            rows.append(
                f"| {rate:g}/s | {s.succeeded}/{s.requests} | {cpu_ms:.3f} | {1000 / cpu_ms:,.0f} "
                f"| {s.request_throughput:.0f} "
                f"| {s.client_send_lateness_ms_p99 or 0:.1f} | {s.client_loop_lag_ms_p50:.2f} "
                f"| {s.client_cpu_share:.0%} | {'yes' if s.client_saturated else 'no'} | {s.ttft.p50 or 0:.1f} |"
            )
    finally:
        proc.terminate()
    return rows


def main() -> None:
    """Print both tables (Markdown)."""
    acc = uvloop.run(_accuracy())
    print(
        "| offered | requests | TTFT p50 ms | engine first-token lateness p50 ms | generator error ms "
        "| TPOT p50 ms | TPOT error ms | ITL p50 ms | generator CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(acc))
    cap = uvloop.run(_capacity())
    print()
    print(
        "| offered | ok/sent | generator CPU ms/request | req/s one core could drive | achieved req/s "
        "| send lateness p99 ms | loop lag p50 ms | generator CPU "
        "| saturated | TTFT p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(cap))


if __name__ == "__main__":
    main()
