"""What the overload benchmark reads besides the load generator's own figures.

- **CPU pinning**: the gateway (and its ledger writer, a child process, which inherits it) on one
  core, the upstream, the load generator and the attackers on another (``GW_CPU``, ``LG_CPU``), as
  ``bench/overhead`` does; nothing is pinned on a one-core machine or with ``PIN=0``.
- **Kernel counters** (``nstat -az``, absolute values, so no history file is touched): listen
  queue overflows and drops at the gateway's port, and the SYNs clients retransmitted. They are
  the whole network namespace's: anything else on the machine that overflows a listen queue counts
  too.
- **The gateway's own view** (``/metrics``): connections it accepted, requests it shed.
- **The shedding controller's state** during a phase (:class:`Sampler`, ``/metrics`` twice a
  second): the lowest in-progress limit, the highest event-loop lag and queue delay, and the mean
  number of model calls in progress and their mean time in progress (the gateway's in-progress
  integral over the samples inside the recorded window).
- **CPU time** of the gateway process and of its children (the ledger writer), from
  ``/proc/<pid>/stat``: it holds on a loaded machine much better than wall-clock figures.
- **In-app latency** of the admitted requests, from the ledger (``latency_ms``: from the request
  context's creation, after the body is read, to the answer), for the rows of a phase.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

GW_CPU = int(os.environ.get("GW_CPU", "1"))
LG_CPU = int(os.environ.get("LG_CPU", "0"))
PIN = os.environ.get("PIN", "1") != "0" and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")

TICK = os.sysconf("SC_CLK_TCK")
NSTAT = ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPSynRetrans", "TcpExtTCPReqQFullDrop")


def pinned(cpu: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpu`` (None when pinning is off); on the load core it
    also sets the niceness to ``LOAD_NICE`` when that is given (root may lower it: the generator then
    measures the gateway, not its own wait for a CPU on a busy machine)."""
    nice = os.environ.get("LOAD_NICE") if cpu == LG_CPU else None
    if not PIN and nice is None:
        return None

    def pin() -> None:
        if PIN:
            os.sched_setaffinity(0, {cpu})
        if nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, int(nice))

    return pin


def pinning() -> str:
    """One line saying what runs where."""
    nice = os.environ.get("LOAD_NICE")
    load = f" (niceness {nice})" if nice is not None else ""
    if not PIN:
        return "nothing pinned" + load
    return (
        f"gateway and its ledger writer on CPU {GW_CPU}; upstream, load generator and attackers on CPU {LG_CPU}{load}"
    )


def nstat() -> dict[str, int]:
    """The kernel's TCP counters this benchmark reads (empty without ``nstat``)."""
    if shutil.which("nstat") is None:
        return {}
    out = subprocess.run(["nstat", "-az", *NSTAT], capture_output=True, text=True, check=False).stdout
    values = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in NSTAT:
            values[parts[0]] = int(parts[1])
    return values


def metrics(url: str) -> dict[str, float]:
    """The gateway's ``/metrics`` values, by sample name (labels included)."""
    request = urllib.request.Request(f"{url}/metrics", headers={"authorization": "Bearer m"})
    text = urllib.request.urlopen(request, timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


def delta(after: dict[str, float] | dict[str, int], before: dict[str, float] | dict[str, int], name: str) -> int:
    """``after[name] - before[name]`` (0 where either lacks it)."""
    return int(after.get(name, 0) - before.get(name, 0))


def in_app_latency(ledger: Path, since: float, until: float) -> tuple[int, float, float]:
    """Rows answered 200 that arrived in [since, until], with the p50 and p99 of their ``latency_ms``."""
    if not ledger.exists():
        return 0, 0.0, 0.0
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10) as db:
        rows = sorted(
            r[0]
            for r in db.execute(
                "SELECT latency_ms FROM requests WHERE status = 200 AND ts >= ? AND ts <= ?", (since, until)
            )
        )
    if not rows:
        return 0, 0.0, 0.0
    return len(rows), rows[int(0.5 * (len(rows) - 1) + 0.5)], rows[int(0.99 * (len(rows) - 1) + 0.5)]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def descendants_cpu_s(pid: int) -> float:
    """CPU seconds of the live descendants of ``pid``."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                total += cpu_s(int(child)) + descendants_cpu_s(int(child))
    return total


class Sampler:
    """Polls the gateway's ``/metrics`` every ``interval_s`` in a thread while a phase runs, and the
    CPU time of the gateway (``pid`` and its children), so that the CPU of the generator's recorded
    window can be told apart from its warm-up (:meth:`cpu_between`)."""

    def __init__(self, url: str, pid: int, interval_s: float = 0.5) -> None:
        self.url = url
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[dict[str, float]] = []
        self.cpu: list[tuple[float, float]] = []  # (wall time, CPU seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._cpu_sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._cpu_sample()

    def _cpu_sample(self) -> None:
        with contextlib.suppress(OSError):
            self.cpu.append((time.time(), cpu_s(self.pid) + descendants_cpu_s(self.pid)))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._cpu_sample()
            with contextlib.suppress(OSError):  # the gateway too busy to answer in time: the next sample
                sample = metrics(self.url)
                sample["_t"] = time.time()
                self.samples.append(sample)

    def cpu_between(self, since: float, until: float) -> float:
        """The gateway's CPU seconds from wall time ``since`` to ``until`` (linear between samples)."""

        def at(t: float) -> float:
            points = self.cpu
            if t <= points[0][0]:
                return points[0][1]
            for (t0, c0), (t1, c1) in itertools.pairwise(points):
                if t <= t1:
                    return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)
            return points[-1][1]

        return at(until) - at(since)

    def in_progress(self, since: float, until: float) -> str:
        """``mean calls in progress / their mean ms in progress`` over the samples within [since, until]
        (from the gateway's in-progress integral; "-" without two samples there)."""
        inside = [s for s in self.samples if since <= s["_t"] <= until and "tokenomy_in_progress_seconds" in s]
        if len(inside) < 2:
            return "-"
        first, last = inside[0], inside[-1]
        busy = last["tokenomy_in_progress_seconds"] - first["tokenomy_in_progress_seconds"]
        answered = last.get("tokenomy_model_calls_answered", 0) - first.get("tokenomy_model_calls_answered", 0)
        mean = busy / max(last["_t"] - first["_t"], 1e-9)
        return f"{mean:.0f} / {1000 * busy / max(answered, 1):.1f}"

    def summary(self) -> str:
        """``lowest limit / highest loop lag ms / highest queue delay ms`` over the samples."""
        if not self.samples:
            return "-"
        limit = min(s.get("tokenomy_in_flight_limit", 0) for s in self.samples)
        lag = max(s.get("tokenomy_event_loop_lag_seconds", 0) for s in self.samples)
        delay = max(s.get("tokenomy_queue_delay_seconds", 0) for s in self.samples)
        return f"{limit:.0f} / {1000 * lag:.0f} / {1000 * delay:.0f}"


def children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (the load generator's runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
