"""What holds up a request at low rates: garbage collection, the writer process, periodic work.

    PYTHONPATH=src .venv/bin/python bench/overhead/stalls.py [--rates 50 200] [--reps 2] [--variants ...]

Runs ``tokenomy serve`` (this directory's ``tokenomy.yaml`` pointed at the aiohttp fake upstream of
``stage_profile.py``; one worker, pinned to ``--gw-cpu`` with its writer process, as in ``run.sh``)
under a fixed request rate (``ratebench``, from ``install.sh``; miss path: ``Cache-Control:
no-cache``) and reads, for each rate and variant (interleaved, ``--reps`` times):

- **scheduler** (``perf sched record``, needs root): for every wake-up of the gateway's event-loop
  thread, the time until it ran and which tasks held its CPU meanwhile -- its own writer process
  or other processes; and, for the wake-ups that found the writer running, how long it kept the
  CPU (the scheduler's decision between the two alone, so other people's load moves it little).
- **garbage collection** (``gc.callbacks`` inside the gateway): collections per second and the
  longest one, in CPU time of the loop's thread.
- **idle wake-ups**: how often the loop's thread runs with no traffic, and its CPU per second
  (``/proc/PID/task/PID/schedstat``).
- latency from ``ratebench`` (send to last byte): wall-clock, so only meaningful on a quiet machine.

A variant is ``LABEL:VAR=VALUE,...``: environment for ``tokenomy serve`` (e.g. ``PYTHONPATH=`` another
checkout's ``src`` for a before/after comparison); the default is this checkout as it is.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchtool import body as chat_body  # noqa: E402
from benchtool import children, post_ok, stop  # noqa: E402
from stage_profile import model_table, start_upstream  # noqa: E402

RATEBENCH = Path(os.environ.get("ANCHORS_HOME", Path.home() / ".cache/gateway-anchors")) / "bin/ratebench"

GC_WRAPPER = r"""
import gc, json, os, signal, sys, time
events, start = [], [0.0]
def on_gc(phase, info):
    if phase == "start":
        start[0] = time.thread_time()
    else:
        events.append((info["generation"], time.thread_time() - start[0]))
gc.callbacks.append(on_gc)
def dump(*_):
    with open(os.environ["STALLS_GC_FILE"], "w") as fh:
        json.dump(events, fh)
    events.clear()
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["tokenomy", *sys.argv[1:]]
from tokenomy.cli import main
main()
"""

_LINE = re.compile(r"\s*(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)")


def sched_delays(script: str, gateway: int, writer: int) -> dict[str, Any]:
    """Wake-up delays of the gateway's loop thread and who held its CPU meanwhile (perf script text)."""
    current: dict[int, tuple[int, float]] = {}  # cpu -> (pid running, since)
    wake_at: float | None = None
    wake_cpu = -1
    held: collections.Counter[str] = collections.Counter()
    delays: list[tuple[float, collections.Counter[str]]] = []
    found_writer: float | None = None  # a wake-up found the writer on the CPU: when
    yields: list[float] = []  # ... and how long the writer kept it
    for line in script.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        cpu, t, event, rest = int(m[2]), float(m[3]), m[4], m[5]
        if event == "sched_waking" and wake_at is None and f" pid={gateway} " in f" {rest} ":
            wake_at, held = t, collections.Counter()
            target = re.search(r"target_cpu=(\d+)", rest)
            wake_cpu = int(target[1]) if target else cpu
            if current.get(wake_cpu, (0, 0.0))[0] == writer:
                found_writer = t
        elif event == "sched_switch":
            sw = re.search(r"prev_pid=(\d+) .*next_pid=(\d+)", rest)
            if sw is None:
                continue
            nxt = int(sw[2])
            if found_writer is not None and cpu == wake_cpu and int(sw[1]) == writer:
                yields.append(t - found_writer)
                found_writer = None
            if wake_at is not None and cpu == wake_cpu and cpu in current:
                pid, since = current[cpu]
                if pid not in (0, gateway):
                    held["writer" if pid == writer else "other"] += t - max(since, wake_at)
            current[cpu] = (nxt, t)
            if nxt == gateway and wake_at is not None:
                delays.append((t - wake_at, held))
                wake_at = None
    values = sorted(d for d, _ in delays) or [0.0]
    by_writer = [h["writer"] for _, h in delays if h["writer"] > 0]
    yields.sort()
    return {
        "found_writer": len(yields),
        "yield_p50_ms": yields[len(yields) // 2] * 1e3 if yields else 0.0,
        "yield_max_ms": yields[-1] * 1e3 if yields else 0.0,
        "yields_over_1ms": sum(1 for y in yields if y > 1e-3),
        "wakeups": len(delays),
        "p99_ms": values[min(len(values) - 1, int(0.99 * len(values)))] * 1e3,
        "writer_ms": sum(h["writer"] for _, h in delays) * 1e3,
        "writer_wakeups": len(by_writer),
        "writer_max_ms": max(by_writer, default=0.0) * 1e3,
        "other_ms": sum(h["other"] for _, h in delays) * 1e3,
    }


def _schedstat(pid: int) -> tuple[float, int]:
    """(seconds on CPU, times scheduled in) of a process's main thread."""
    run_ns, _wait_ns, slices = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
    return int(run_ns) / 1e9, int(slices)


def run_one(rate: int, variant: str, args: argparse.Namespace, home: str) -> dict[str, Any]:
    """One gateway start, an idle reading, then ``rate`` rps for ``args.duration`` seconds."""
    config = Path(home) / "gw.yaml"
    config.write_text(model_table(args.upstream_port))
    gc_file = Path(home) / "gc.json"
    label, _, assignments = variant.partition(":")
    env = {**os.environ, "TOKENOMY_HOME": tempfile.mkdtemp(dir=home)}
    env.update(a.split("=", 1) for a in assignments.split(",") if a)
    env["STALLS_GC_FILE"] = str(gc_file)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = ["taskset", "-c", str(args.gw_cpu), sys.executable, "-c", GC_WRAPPER, "serve", "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    body_file = Path(home) / "body.json"
    body_file.write_text(chat_body("fake-model"))
    try:
        deadline = time.monotonic() + 120
        while not post_ok(url, body_file.read_bytes()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("tokenomy serve did not answer")
            time.sleep(0.2)
        gateway = proc.pid
        writer = next(
            (c for c in children(gateway) if b"writer_process" in Path(f"/proc/{c}/cmdline").read_bytes()), -1
        )
        time.sleep(1)
        cpu0, slices0 = _schedstat(gateway)
        time.sleep(args.idle)
        cpu1, slices1 = _schedstat(gateway)
        load = [str(RATEBENCH), "-url", url, "-body", str(body_file), "-rate", str(rate)]
        load += ["-H", "Cache-Control: no-cache", "-expect", '"usage"']
        pin = ["taskset", "-c", str(args.lg_cpu)]
        subprocess.run([*pin, *load, "-duration", "2s", "-warmup", "0s"], check=True, capture_output=True)
        os.kill(gateway, signal.SIGUSR1)  # forget the warm-up's collections
        time.sleep(0.2)
        measured = [*pin, *load, "-duration", f"{args.duration}s", "-warmup", "0s"]
        bench = subprocess.Popen(measured, stdout=subprocess.PIPE)
        perf = None
        if args.perf and shutil.which("perf"):
            perf_file = Path(home) / "sched.data"
            perf = subprocess.run(
                ["perf", "sched", "record", "-o", str(perf_file), "--", "sleep", str(max(1, args.duration - 1))],
                capture_output=True,
            )
        out, _ = bench.communicate()
        os.kill(gateway, signal.SIGUSR1)
        time.sleep(0.5)
        sched: dict[str, Any] = {}
        if perf is not None and perf.returncode == 0:
            text = subprocess.run(
                ["perf", "script", "-i", str(perf_file), "-F", "tid,cpu,time,event,trace"],
                capture_output=True, text=True,
            ).stdout  # fmt: skip
            sched = sched_delays(text, gateway, writer)
        collections_ = json.loads(gc_file.read_text())
        result = json.loads(out)
        return {
            "rate": rate, "variant": label, "ok_rps": result["achieved_ok_rps"], "lat": result["lat_ms"],
            "sent": result["sent"], "idle_wakeups_s": (slices1 - slices0) / args.idle,
            "idle_cpu_ms_s": (cpu1 - cpu0) * 1e3 / args.idle, "gc": collections_, "sched": sched,
        }  # fmt: skip
    finally:
        stop(proc)


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def table(runs: list[dict[str, Any]], duration: float) -> str:
    """One row per (variant, rate): medians over the repetitions."""
    head = (
        "| variant | rate rps | requests | p50 / p99 ms (wall) | loop wake-up delay p99 ms | CPU held by the "
        "writer while the loop waited, ms per 100 requests | wake-ups delayed by the writer, per 100 requests | "
        "longest such delay ms | CPU held by other processes, ms per 100 requests | GC collections/s gen0/1/2 | "
        "longest GC ms (CPU) | idle wake-ups/s | idle CPU ms/s | wake-ups that found the writer on the CPU, per 100 "
        "requests | time the writer kept the CPU then, p50 / max ms | ... over 1 ms, per 100 requests |"
    )
    lines = [head, "|" + "---:|" * 16]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["variant"], run["rate"]), []).append(run)
    for (variant, rate), group in sorted(groups.items(), key=lambda kv: kv[0][1]):
        traced = [g for g in group if g["sched"]]

        def med(key: str, per_100: bool = False, runs: list[dict[str, Any]] = traced) -> str:
            vals = [g["sched"][key] * (100 / max(1, g["sent"]) if per_100 else 1) for g in runs]
            return f"{_median(vals):.2f}" if vals else "-"

        gcs = [collections.Counter(gen for gen, _ in g["gc"]) for g in group]
        rates = "/".join(f"{_median([c[gen] / duration for c in gcs]):.1f}" for gen in (0, 1, 2))
        longest = _median([max((cpu for _, cpu in g["gc"]), default=0.0) * 1e3 for g in group])
        lat = f"{_median([g['lat']['p50'] for g in group]):.2f} / {_median([g['lat']['p99'] for g in group]):.2f}"
        wakeups, cpu = (_median([g[k] for g in group]) for k in ("idle_wakeups_s", "idle_cpu_ms_s"))
        idle = f"{wakeups:.0f} | {cpu:.1f}"
        lines.append(
            f"| {variant} | {rate} | {sum(g['sent'] for g in group)} | {lat} | {med('p99_ms')} | "
            f"{med('writer_ms', True)} | {med('writer_wakeups', True)} | {med('writer_max_ms')} | "
            f"{med('other_ms', True)} | {rates} | {longest:.2f} | {idle} | {med('found_writer', True)} | "
            f"{med('yield_p50_ms')} / {med('yield_max_ms')} | {med('yields_over_1ms', True)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 200])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["as is:"],
        help="LABEL:VAR=VALUE,... (environment of tokenomy serve)",
    )
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the idle reading")
    parser.add_argument("--no-perf", dest="perf", action="store_false", help="skip the scheduler trace")
    parser.add_argument("--gw-cpu", type=int, default=1)
    parser.add_argument("--lg-cpu", type=int, default=0)
    parser.add_argument("--port", type=int, default=18735)
    parser.add_argument("--upstream-port", type=int, default=18736)
    args = parser.parse_args(argv)
    if not RATEBENCH.exists():
        raise SystemExit(f"{RATEBENCH} not found: run bench/overhead/install.sh first")
    home = tempfile.mkdtemp(prefix="tokenomy-stalls-")
    upstream = start_upstream(args.upstream_port)
    os.sched_setaffinity(upstream.pid, {args.lg_cpu})
    runs: list[dict[str, Any]] = []
    try:
        for rep in range(args.reps):
            for rate in args.rates:
                for variant in args.variants:
                    runs.append(run_one(rate, variant, args, home))
                    r = runs[-1]
                    print(
                        f"  rep {rep + 1} rate {rate} {r['variant']}: p99 {r['lat']['p99']:.2f} ms, "
                        f"writer-held {r['sched'].get('writer_ms', float('nan')):.2f} ms",
                        file=sys.stderr,
                    )
    finally:
        upstream.terminate()
        upstream.wait()
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"Gateway loop stalls, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; gateway and writer pinned to CPU {args.gw_cpu}, upstream and ratebench to "
        f"CPU {args.lg_cpu}; {args.duration:g} s per run, {args.reps} repetitions (medians).\n"
    )
    print(table(runs, args.duration))


if __name__ == "__main__":
    main()
