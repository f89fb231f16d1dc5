"""CPU cost of the state the workers of ``serve --workers N`` share, per request.

One command: ``PYTHONPATH=src python bench/workers/shared_state.py``. Prints one table: CPU
microseconds per operation (``time.process_time``, which a busy machine disturbs far less than
wall time), median and range of 7 repetitions of 100,000 operations each, for

- the in-process deployment limiter a single process uses (``LocalLimiter.acquire``, RPM + TPM),
- the same limits in the workers' shared memory (``SharedLimiter.acquire`` over the mapped file:
  a ``flock`` pair and the bucket arithmetic), with and without a second process taking from the
  same buckets at the same time,
- a settlement of the TPM charge (in process / shared memory),
- the generation check a level-1 cache lookup and a stored-key lookup pay (an 8-byte read).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tokenomy.routing.limits import LocalLimiter
from tokenomy.routing.shared_limits import SharedLimiters
from tokenomy.state.shared_memory import CACHE_GENERATION, SharedRateLimiter, SharedState

N = 100_000
REPEATS = 7
BIG = 10**9  # limits that never refuse: every call takes the full path

_RIVAL = """
import sys, time
from pathlib import Path
from tokenomy.keys.limits import Bucket
from tokenomy.state.shared_memory import SharedState
state = SharedState(Path(sys.argv[1]))
end = time.monotonic() + float(sys.argv[2])
buckets = [Bucket("dep:bench:rpm", 10**9, 1.0), Bucket("dep:bench:tpm", 10**9, 100.0)]
while time.monotonic() < end:
    state.take(buckets)
"""


def cpu_us(op: Callable[[], object]) -> list[float]:
    """CPU µs per call of ``op``, one figure per repetition."""
    out = []
    for _ in range(REPEATS):
        start = time.process_time()
        for _ in range(N):
            op()
        out.append((time.process_time() - start) / N * 1e6)
    return out


def acquire_op(limiter: object) -> Callable[[], object]:
    """One ``await limiter.acquire(100)`` driven without an event loop (it never suspends)."""

    def op() -> object:
        coro = limiter.acquire(100)  # type: ignore[attr-defined]
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        raise AssertionError("acquire suspended")

    return op


def main() -> None:
    rows: list[tuple[str, list[float]]] = []
    local = LocalLimiter(BIG, BIG)
    rows.append(("deployment limiter, in process (1 worker): acquire", cpu_us(acquire_op(local))))
    rows.append(("deployment limiter, in process: settle", cpu_us(lambda: local.settle(100, 90))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state"
        state = SharedState.create(path)
        limiter = SharedLimiters(SharedRateLimiter(state)).limiter("bench", BIG, BIG)
        rows.append(("deployment limiter, shared memory: acquire", cpu_us(acquire_op(limiter))))
        rows.append(("deployment limiter, shared memory: settle", cpu_us(lambda: limiter.settle(100, 90))))
        rival = subprocess.Popen([sys.executable, "-c", _RIVAL, str(path), "60"])
        time.sleep(0.5)
        try:
            rows.append(
                ("deployment limiter, shared memory, another process taking too: acquire", cpu_us(acquire_op(limiter)))
            )
        finally:
            rival.kill()
            rival.wait()
        rows.append(
            (
                "generation check (level-1 cache and stored-key lookups)",
                cpu_us(lambda: state.generation(CACHE_GENERATION)),
            )
        )
        state.close()
    print(f"CPU µs per operation, median [min-max] of {REPEATS} repetitions of {N:,} ({sys.version.split()[0]})")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end\n")
    print("| operation | µs |")
    print("|---|---|")
    for name, values in rows:
        print(f"| {name} | {statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}] |")


if __name__ == "__main__":
    main()
