"""How fast ``tokenomy bench``'s load generator can go, in wall-clock, against the fastest fake.

One command (needs nginx with the echo module, see ``bench/overhead/install.sh``)::

    PYTHONPATH=src python bench/planning/capacity.py [--rates 500,1000,1500,2000] [--repeats 3] [--processes 1]

The upstream is the nginx fake of ``bench/overhead/upstream`` on port 8091: a fixed streamed chat
completion (7 SSE events with usage, no delay), served by one nginx worker in C, so the generator,
not the server, is what runs out first. The script starts it when nothing answers on that port.

For each offered Poisson rate (4 s of arrivals, fixed seed) it runs the generator ``--repeats``
times (in this process, or spread over ``--processes`` generator processes as ``tokenomy bench
--processes`` does) and prints the median and the range of: achieved request rate (completed
requests / wall time), generator CPU per request (``time.process_time``, all threads of every
generator process), p99 send
lateness against the schedule, and how many repeats the generator flagged itself saturated. A rate
is *sustained* when every repeat completed every request at an achieved rate within 3% of the
offered one. The 1-minute load average before each rate is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
from pathlib import Path

import uvloop

from tokenomy.planning import loadgen, loadgen_procs, workload
from tokenomy.planning.metrics import summarize

UPSTREAM = ("127.0.0.1", 8091)
START = Path(__file__).resolve().parents[1] / "overhead" / "upstream" / "start.sh"
ARRIVALS_S = 4.0
SUSTAINED = 0.97


def _ensure_upstream() -> None:
    try:
        socket.create_connection(UPSTREAM, timeout=1).close()
    except OSError:
        subprocess.run(["bash", str(START)], check=True)


def _span(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


async def _one(rate: float, processes: int) -> tuple[float, float, float, bool, bool]:
    n = int(rate * ARRIVALS_S)
    reqs = workload.synthetic("in=8,out=4", n)
    target = loadgen.Target(f"http://{UPSTREAM[0]}:{UPSTREAM[1]}/v1", "fake-model")
    run = await loadgen_procs.run(target, reqs, processes=processes, rate=rate, seed=2)
    s = summarize(f"rate={rate:g}/s", run, {})
    # the rate the schedule really offered: requests / the last scheduled send (of any process)
    span = max(loadgen.arrivals(rate / processes, len(reqs[i::processes]), 2 + i)[-1] for i in range(processes))
    offered = n / span
    cpu_ms = s.client_cpu_ms_per_request
    complete = s.succeeded == n
    ok = complete and s.request_throughput >= SUSTAINED * offered
    return s.request_throughput, cpu_ms, s.client_send_lateness_ms_p99 or 0.0, s.client_saturated, ok


async def _sweep(rates: list[float], repeats: int, processes: int) -> list[str]:
    rows = []
    for rate in rates:
        load = os.getloadavg()[0]
        runs = [await _one(rate, processes) for _ in range(repeats)]
        achieved, cpu, late = ([r[i] for r in runs] for i in range(3))
        saturated = sum(r[3] for r in runs)
        sustained = all(r[4] for r in runs)
        rows.append(
            f"| {rate:,.0f}/s | {load:.1f} | {_span(achieved, ',.0f')} | {_span(cpu, '.3f')} "
            f"| {_span(late, '.1f')} | {saturated}/{repeats} | {'yes' if sustained else 'no'} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    """Print the capacity table (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="500,1000,1500,2000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="generator processes")
    args = parser.parse_args()
    _ensure_upstream()
    print(f"{args.processes} generator process(es); {os.cpu_count()} CPUs; nginx fake on {UPSTREAM[0]}:{UPSTREAM[1]}\n")
    print(
        f"| offered | load avg (1 min) | achieved req/s, median (range of {args.repeats}) "
        "| generator CPU ms/request | send lateness p99 ms | flagged saturated | sustained |"
    )
    print("|---|---|---|---|---|---|---|")
    uvloop.run(_sweep([float(r) for r in args.rates.split(",")], args.repeats, args.processes))


if __name__ == "__main__":
    main()
