"""Where the gateway's CPU goes under overload: one command, one table.

    python bench/overload/profile.py        # FACTOR=2 SECONDS=6 RATE_HZ=250 by default (S=...: skip measuring S;
                                            # FACTOR=0: profile the saturation loop itself)

It starts the fixed-answer upstream and ``tokenomy serve`` (keys, ledger on, cache off) as
``run.py`` does, measures the saturation throughput S (64 connections back to back; or takes
``S``), then drives an open loop at FACTOR x S for SECONDS while ``py-spy`` samples the gateway
process (``NATIVE=1`` adds C frames: garbage collection, uvloop). Each sample is put in one
bucket, by the first of these frames on its stack:

- **new connection**: ``connection_made`` (the protocol object, the per-address count, the head timer);
- **connection closed**: ``connection_lost``;
- **shed**: the protocol's shed decision and its pre-built answer (``edge_enter``, ``_shed``, the
  refusal's counters and its sampled ledger row);
- **request bytes**: the rest of ``data_received`` -- head and body parsing of every request,
  admitted or shed;
- **admitted request**: the ASGI app (the request's task) and the upstream client's callbacks;
- **timers**: head deadlines, the loop-lag monitor and the in-progress limit's controller;
- **ledger hand-off thread**, **garbage collection** (native frames only), **event loop**
  (a sample with no Python frame below the loop: uvloop's own C code, system calls);

and the bucket's CPU time is its share of the samples times the gateway process's CPU time in the
window (``/proc``, all threads; the ledger writer process apart). Dividing by the events the
bucket serves gives CPU µs per admitted 200, per shed 503 and per accepted connection. Sampling
rates are shares, not instruction counts: take two runs and compare shares.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import probes
import run as bench

FACTOR = float(os.environ.get("FACTOR", "2"))
SECONDS = float(os.environ.get("SECONDS", "6"))
RATE_HZ = int(os.environ.get("RATE_HZ", "250"))
NATIVE = os.environ.get("NATIVE", "0") == "1"
PY_SPY = Path(sys.executable).parent / "py-spy"

# (bucket, frame markers): the first bucket one of whose markers is on a sample's stack takes it
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("garbage collection", ("gc_collect", "collect_with_callback", "gc_collect_main")),
    ("new connection (connection_made)", ("connection_made (",)),
    ("connection closed (connection_lost)", ("connection_lost (",)),
    ("shed: decision and pre-built 503", ("edge_enter (", "_shed (", "record_shed (", "RowBudget.take", "shed (")),
    ("admitted request: ASGI app", ("run_asgi (",)),
    ("admitted request: upstream client callbacks", ("aiohttp/",)),
    ("request bytes: head and body parsing (all requests)", ("data_received (",)),
    ("timers: head deadline, loop lag, limit", ("_head_timeout", "_unread_body_timeout", "LoopLagMonitor", "_tick (")),
    ("ledger hand-off thread", ("ProcessLedger._deliver", "WriterLauncher", "threading.py")),
]


def classify(stack: str) -> str:
    """The bucket of one collapsed stack."""
    for name, markers in BUCKETS:
        if any(marker in stack for marker in markers):
            return name
    frames = stack.split(";")
    if frames and all(
        (
            "runners.py" in f
            or "run.py" in f
            or "cli.py" in f
            or "click/" in f
            or "runpy" in f
            or "uvicorn/server.py" in f
            or "_compat.py" in f
            or "uvloop" in f
            or not f.strip()
        )
        for f in frames
    ):
        return "event loop (no Python frame: uvloop C code, system calls)"
    return "other"


IDLE = (
    "Condition.wait",
    "Event.wait",
    "SimpleQueue",
    "acquire_lock",
    "pthread_cond",
    "epoll_wait",
    "_worker (concurrent/futures/thread.py:81)",
)
"""A sample whose innermost frames are one of these is a thread waiting, not running (py-spy's own
idle detection misses some)."""


def profile(raw: Path) -> collections.Counter[str]:
    """Running samples per bucket from a py-spy ``raw`` (collapsed stacks) file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and not any(marker in frame for frame in stack.split(";")[-3:] for marker in IDLE):
            counts[classify(stack)] += int(n)
    return counts


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="tokenomy-profile-"))
    upstream_port = bench.free_port()
    procs = [bench._python(str(Path(__file__).parent / "run.py"), "upstream", str(upstream_port))]
    auth = [f"authorization: Bearer {bench.KEY}"]
    try:
        time.sleep(0.5)
        gateway, url = bench._gateway(upstream_port, keys=True, home=home, extra=os.environ.get("VARIANT", ""))
        procs.append(gateway)
        bench._settle(url, auth)
        if "S" in os.environ:
            saturation = float(os.environ["S"])
        else:
            saturation = float(bench._load_run(url, 50_000, 4, auth, in_flight=64)["ok_rps"])  # type: ignore[arg-type]
            bench._settle(url, auth)
        raw = home / "profile.txt"
        before_m, before_cpu = probes.metrics(url), probes.cpu_s(gateway.pid)
        spy = [str(PY_SPY), "record", "--pid", str(gateway.pid), "--rate", str(RATE_HZ), "--format", "raw"]
        spy += ["-o", str(raw), "--duration", f"{SECONDS:.0f}"] + (["--native"] if NATIVE else ["--nonblocking"])
        sampler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if FACTOR > 0:
            r = bench._load_run(url, FACTOR * saturation, SECONDS, auth, warmup=0)
        else:  # FACTOR=0: the saturation loop itself (64 connections back to back), for comparison
            r = bench._load_run(url, 50_000, SECONDS, auth, in_flight=64, warmup=0)
        cpu = probes.cpu_s(gateway.pid) - before_cpu
        sampler.wait()
        after_m = probes.metrics(url)
    finally:
        bench.kill_all(procs)
    codes = dict(r["codes"])  # type: ignore[call-overload]
    ok, shed = codes.get("200", 0), codes.get("503", 0)
    accepted = probes.delta(after_m, before_m, "tokenomy_connections_accepted_total")
    counts = profile(raw)
    total = max(sum(counts.values()), 1)
    per = {
        "new connection (connection_made)": ("accepted connection", accepted),
        "connection closed (connection_lost)": ("accepted connection", accepted),
        "shed: decision and pre-built 503": ("503", shed),
        "admitted request: ASGI app": ("200", ok),
        "admitted request: upstream client callbacks": ("200", ok),
        "request bytes: head and body parsing (all requests)": ("request", ok + shed),
    }
    load = (
        f"open loop at {FACTOR:g} x S = {FACTOR * saturation:.0f} rps" if FACTOR > 0 else "64 connections back to back"
    )
    print(
        f"{probes.pinning()}; {load} for {SECONDS:g} s "
        f"(S = {saturation:.0f} rps); py-spy at {RATE_HZ} Hz{', native frames' if NATIVE else ''}\n"
    )
    print(
        f"answered: {ok} x 200, {shed} x 503, other {sum(codes.values()) - ok - shed}; {accepted} connections "
        f"accepted; gateway CPU {cpu:.2f} s ({1e6 * cpu / max(ok, 1):.0f} µs per 200, "
        f"{1e6 * cpu / max(ok + shed, 1):.0f} µs per answer); admitted p50 / p99 {r['p50']:.1f} / {r['p99']:.1f} ms\n"
    )
    print("| where | samples | share | CPU ms | per | CPU µs each |")
    print("|---|---|---|---|---|---|")
    for name, n in counts.most_common():
        ms = 1e3 * cpu * n / total
        unit, events = per.get(name, ("", 0))
        each = f"{1e3 * ms / events:.1f}" if events else "-"
        print(f"| {name} | {n} | {100 * n / total:.1f}% | {ms:.0f} | {unit or '-'} ({events}) | {each} |")


if __name__ == "__main__":
    main()
