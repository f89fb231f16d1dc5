"""What a flood of shed requests costs the requests being served, in place: one command, one table.

    python bench/overload/shed_marginal.py     # FLOODS="0 1000 2000 4000" SECONDS=5 REPEAT=2 CONNS=64

It starts the overload benchmark's fixed-answer upstream and ``tokenomy serve`` (keys, ledger on,
cache off) with the in-progress limit fixed at CONNS (``max_in_flight: CONNS``, the lateness
controller off: ``shed_loop_lag_ms: 0``), then, per step, runs together:

- a closed loop of CONNS connections sending back to back (it keeps the limit full, so the gateway
  is saturated and the calls in progress are always about CONNS, whatever the flood), and
- an open loop of FLOOD requests per second (the same request): nearly all of it finds the limit
  full and is shed with the pre-built 503.

The overload controllers are out of the picture: what changes between steps is only the shed
traffic. Per step: 200s and 503s per second, the gateway's CPU (process and ledger writer,
``/proc``), the connections it accepted, the CPU per 200 and per answer, and the share of the
gateway process's CPU spent in the kernel (system time: sockets, and on loopback the peer's TCP
receive path too), and the ledger writer process's share of the CPU of the two. Then a least-squares fit
over every step of ``CPU = a x 200s + b x 503s`` gives the in-place cost of a served request and of a
shed one: if ``b`` is small and ``a`` stays flat, goodput under overload is lost to something other
than the sheds (how many calls the controller lets be in progress, and how late); if ``a`` grows
with the flood, the sheds slow down the requests being served. CPU time holds on a loaded machine
much better than throughput; the throughput columns want a quiet one.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import probes
import run as bench

FLOODS = [int(f) for f in os.environ.get("FLOODS", "0 1000 2000 4000").split()]
SECONDS = float(os.environ.get("SECONDS", "5"))
REPEAT = int(os.environ.get("REPEAT", "2"))
CONNS = int(os.environ.get("CONNS", "64"))


def _user_sys(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of the gateway process itself (its ledger writer apart)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / probes.TICK, int(fields[12]) / probes.TICK


def _step(url: str, pid: int, flood: int, auth: list[str]) -> dict[str, float]:
    before = probes.metrics(url)
    user0, sys0 = _user_sys(pid)
    writer0 = probes.descendants_cpu_s(pid)
    results: dict[str, dict[str, object]] = {}

    def run(name: str, rate: float, in_flight: int) -> None:
        results[name] = bench._load_run(url, rate, SECONDS, auth, in_flight=in_flight)

    with probes.Sampler(url, pid) as sampler:
        threads = [threading.Thread(target=run, args=("closed", 1_000_000, CONNS))]
        if flood:
            threads.append(threading.Thread(target=run, args=("flood", flood, 4096)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    since, until = results["closed"]["window"]  # type: ignore[misc]
    span = until - since
    cpu = sampler.cpu_between(since, until)
    ok = shed = 0
    for r in results.values():
        codes = dict(r["codes"])  # type: ignore[call-overload]
        ok += codes.get("200", 0)
        shed += codes.get("503", 0)
    user1, sys1 = _user_sys(pid)
    writer1 = probes.descendants_cpu_s(pid)
    bench._drain(url)
    accepted = probes.delta(probes.metrics(url), before, "tokenomy_connections_accepted_total")
    return {
        "ok": ok / SECONDS,
        "shed": shed / SECONDS,
        "cpu": cpu / span,
        "accepted": accepted,
        "span": span,
        "sys_share": (sys1 - sys0) / max(user1 - user0 + sys1 - sys0, 1e-9),
        "writer_share": (writer1 - writer0) / max(user1 - user0 + sys1 - sys0 + writer1 - writer0, 1e-9),
    }


def _fit(rows: list[dict[str, float]]) -> tuple[float, float]:
    """Least squares of cpu = a x ok + b x shed (per second), without intercept."""
    s_oo = sum(r["ok"] ** 2 for r in rows)
    s_ss = sum(r["shed"] ** 2 for r in rows)
    s_os = sum(r["ok"] * r["shed"] for r in rows)
    s_oc = sum(r["ok"] * r["cpu"] for r in rows)
    s_sc = sum(r["shed"] * r["cpu"] for r in rows)
    det = s_oo * s_ss - s_os**2
    if det == 0:
        return s_oc / max(s_oo, 1e-9), 0.0
    return (s_oc * s_ss - s_sc * s_os) / det, (s_sc * s_oo - s_oc * s_os) / det


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="tokenomy-shed-marginal-"))
    procs: list[subprocess.Popen[str]] = []
    auth = [f"authorization: Bearer {bench.KEY}"]
    try:
        upstream_port = bench.start_upstream(procs)
        gateway, url = bench._gateway(
            upstream_port, keys=True, home=home, extra=f"shed_loop_lag_ms: 0; max_in_flight: {CONNS}"
        )
        procs.append(gateway)
        bench._settle(url, auth)
        rows: dict[int, list[dict[str, float]]] = {f: [] for f in FLOODS}
        for _ in range(REPEAT):
            for flood in FLOODS:  # interleaved: a drift in the machine's load hits every step alike
                rows[flood].append(_step(url, gateway.pid, flood, auth))
        load = os.getloadavg()[0]
        print(f"{probes.pinning()}; in-progress limit {CONNS}; {SECONDS:g} s per step, {REPEAT} runs each, "
              f"interleaved; load average {load:.1f}\n")  # fmt: skip
        print(
            "| flood rps offered | 200/s | 503/s | connections accepted | gateway CPU (cores) | CPU µs per 200 "
            "| CPU µs per answer | gateway's CPU in the kernel | ledger writer's share |"
        )
        print("|---|---|---|---|---|---|---|---|---|")

        def cell(values: list[float], fmt: str) -> str:
            spread = f" ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else ""
            return fmt.format(statistics.median(values)) + spread

        for flood in FLOODS:
            rs = rows[flood]
            print(
                f"| {flood} | {cell([r['ok'] for r in rs], '{:.0f}')} | {cell([r['shed'] for r in rs], '{:.0f}')} "
                f"| {cell([r['accepted'] for r in rs], '{:.0f}')} | {cell([r['cpu'] for r in rs], '{:.2f}')} "
                f"| {cell([1e6 * r['cpu'] / max(r['ok'], 1) for r in rs], '{:.0f}')} "
                f"| {cell([1e6 * r['cpu'] / max(r['ok'] + r['shed'], 1) for r in rs], '{:.0f}')} "
                f"| {cell([100 * r['sys_share'] for r in rs], '{:.0f}%')} "
                f"| {cell([100 * r['writer_share'] for r in rs], '{:.0f}%')} |"
            )
        every = [r for rs in rows.values() for r in rs]
        a, b = _fit(every)
        print(f"\nFit over {len(every)} steps, CPU = a x 200s + b x 503s: a = {1e6 * a:.0f} µs per 200, "
              f"b = {1e6 * b:.1f} µs per 503")  # fmt: skip
    finally:
        bench.kill_all(procs)


if __name__ == "__main__":
    main()
