"""What holding more model calls in progress at once costs the gateway per answer: one command, one table.

    python bench/overload/crowding.py     # CONNS="16 64 256 1024" IDLE="0" SECONDS=4 REPEAT=2 by default

It starts the overload benchmark's fixed-answer upstream and ``tokenomy serve`` (keys, ledger on,
cache off; shedding off and ``max_in_flight`` above the largest step, so every request sent is
admitted), then runs closed loops of CONNS connections sending back to back (the generator's
``-maxinflight``: that many calls in progress at once, at most), in turn, REPEAT times. Per step:
answers per second (wall clock: only comparable on a quiet machine), the gateway's CPU time per
answer (process and ledger writer, ``/proc``: it holds on a loaded machine much better), the mean
calls in progress and their mean time in progress (the gateway's in-progress integral,
``tokenomy_in_progress_seconds``). The overload controllers decide how many calls are in progress
under overload; this says what each extra one costs. ``IDLE="0 3000"`` also holds that many
kept-alive connections open and idle during each step (each has sent one ``GET /healthz``), as an
open-loop client leaves them under overload: whether the connections, not the calls in progress,
are what costs.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import probes
import run as bench

CONNS = [int(c) for c in os.environ.get("CONNS", "16 64 256 1024").split()]
SECONDS = float(os.environ.get("SECONDS", "4"))
REPEAT = int(os.environ.get("REPEAT", "2"))
IDLE = [int(c) for c in os.environ.get("IDLE", "0").split()]


def _idle(url: str, count: int) -> list[socket.socket]:
    """``count`` kept-alive connections, each after one answered ``GET /healthz``."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)), 5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        held.append(s)
    for s in held:
        s.recv(4096)
    return held


def _step(url: str, pid: int, conns: int, auth: list[str]) -> tuple[float, float, float, float]:
    """Answers per second, gateway CPU µs per answer, mean in progress, mean ms in progress."""
    before = probes.metrics(url)
    with probes.Sampler(url, pid) as sampler:
        r = bench._load_run(url, 1_000_000, SECONDS, auth, in_flight=conns)
    since, until = r["window"]  # type: ignore[misc]
    cpu = sampler.cpu_between(since, until)
    ok = dict(r["codes"]).get("200", 0)  # type: ignore[call-overload]
    inside = [s for s in sampler.samples if since <= s["_t"] <= until]
    first, last = (inside[0], inside[-1]) if len(inside) >= 2 else (before, probes.metrics(url))
    busy = last.get("tokenomy_in_progress_seconds", 0) - first.get("tokenomy_in_progress_seconds", 0)
    answered = last.get("tokenomy_model_calls_answered", 0) - first.get("tokenomy_model_calls_answered", 0)
    span = max(last.get("_t", until) - first.get("_t", since), 1e-9)
    bench._drain(url)
    return float(r["ok_rps"]), 1e6 * cpu / max(ok, 1), busy / span, 1000 * busy / max(answered, 1)  # type: ignore[arg-type]


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="tokenomy-crowding-"))
    procs: list[subprocess.Popen[str]] = []
    auth = [f"authorization: Bearer {bench.KEY}"]
    try:
        upstream_port = bench.start_upstream(procs)
        ceiling = 2 * max(CONNS)
        gateway, url = bench._gateway(
            upstream_port, keys=True, home=home, extra=f"shed_loop_lag_ms: 0; max_in_flight: {ceiling}"
        )
        procs.append(gateway)
        bench._settle(url, auth)
        steps = [(c, i) for c in CONNS for i in IDLE]
        rows: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {step: [] for step in steps}
        for _ in range(REPEAT):
            for conns, idle in steps:  # interleaved: a drift in the machine's load hits every step alike
                held = _idle(url, idle)
                try:
                    rows[conns, idle].append(_step(url, gateway.pid, conns, auth))
                finally:
                    for s in held:
                        s.close()
        load = os.getloadavg()[0]
        print(f"{probes.pinning()}; {SECONDS:g} s per step, {REPEAT} runs each, interleaved; load average {load:.1f}\n")
        print(
            "| connections sending (calls in progress at most) | idle connections held | answers/s "
            "| gateway CPU µs per answer | mean in progress | mean ms in progress |"
        )
        print("|---|---|---|---|---|---|")
        for conns, idle in steps:
            cells = []
            for i, fmt in enumerate(("{:.0f}", "{:.0f}", "{:.0f}", "{:.1f}")):
                values = [row[i] for row in rows[conns, idle]]
                spread = f" ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else ""
                cells.append(fmt.format(statistics.median(values)) + spread)
            print(f"| {conns} | {idle} | " + " | ".join(cells) + " |")
    finally:
        bench.kill_all(procs)


if __name__ == "__main__":
    main()
