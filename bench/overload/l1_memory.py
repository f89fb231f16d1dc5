"""Level-1 cache accounting against real memory: what the byte bound counts vs the process's RSS.

    PYTHONPATH=src .venv/bin/python bench/overload/l1_memory.py              # a fresh tier, 100,000 entries
    PYTHONPATH=src .venv/bin/python bench/overload/l1_memory.py --turnover   # at the bound, entries turning over
    PYTHONPATH=src .venv/bin/python bench/overload/l1_memory.py --cpu        # CPU time per hit and per put

Entries are built the way the gateway builds them: the body with ``orjson.dumps``, a 40-hex-digit
key, the creation and expiry times and the token counts as separate objects. Every row runs in a
fresh process; RSS growth is measured from just before the tier is created, after a full garbage
collection.

The default mode fills a tier without a limit with 100,000 answers of each size. ``--turnover``
fills a tier bounded at each of ``--bounds`` MiB, then stores ``--turns`` times as many new,
distinct entries as it holds (the least recently used evicted as they come), and prints RSS
growth over what the tier counts when first full and after each full turnover.

``--cpu`` times (``time.process_time``, so a busy machine slows it little) a hit and a put (most
evict) on a tier of ~80,000 entries at a 64 MiB bound: the median and range of 5 runs.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

N = 100_000
SIZES = (100, 1_000, 4_000)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maker(size: int) -> Callable[[int], tuple[str, object]]:
    import orjson

    from tokenomy.cache.entry import CacheEntry

    def make(i: int) -> tuple[str, object]:
        answer = {"id": f"chatcmpl-{i}", "choices": [{"message": {"content": "x" * size}}], "usage": {}}
        key = hashlib.blake2b(str(i).encode(), digest_size=20).hexdigest()  # as cache/key.py
        now = time.time()
        prompt, completion = 300 + i % 1000, size // 4 + i % 7  # new int objects, as parsed from JSON
        body = orjson.dumps(answer)
        return key, CacheEntry(body, now, now + 3600, "fast", "untagged", "t/default/", prompt, completion)

    return make


def fresh(size: int) -> str:
    from tokenomy.cache.memory import MemoryTier

    make = _maker(size)
    make(0)
    gc.collect()
    base = _rss()
    tier = MemoryTier(10**12)
    for i in range(N):
        tier.put(*make(i))  # type: ignore[arg-type]
    gc.collect()
    grown = _rss() - base
    return f"| {size:,} | {tier.bytes_used / 1e6:.1f} | {grown / 1e6:.1f} | {grown / tier.bytes_used:.2f} |"


def turnover(size: int, bound_mib: float, turns: int) -> str:
    from tokenomy.cache.memory import MemoryTier

    make = _maker(size)
    make(0)
    gc.collect()
    base = _rss()
    tier = MemoryTier(int(bound_mib * 2**20))
    i = 0
    while len(tier) == i:  # until the first eviction
        tier.put(*make(i))  # type: ignore[arg-type]
        i += 1
    held = len(tier)
    ratios = []
    for turn in range(turns + 1):
        if turn:
            for _ in range(held):
                tier.put(*make(i))  # type: ignore[arg-type]
                i += 1
        gc.collect()
        ratios.append((_rss() - base) / tier.bytes_used)
    cells = " | ".join(f"{r:.2f}" for r in ratios)
    return f"| {bound_mib:g} | {size:,} | {held:,} | {tier.bytes_used / 1e6:.1f} | {cells} | {max(ratios):.2f} |"


def cpu(runs: int = 5, n: int = 200_000) -> None:
    from tokenomy.cache.memory import MemoryTier

    make = _maker(300)
    items = [make(i) for i in range(n)]
    now = time.time()
    puts, hits = [], []
    for _ in range(runs):
        tier = MemoryTier(64 * 2**20)
        t0 = time.process_time()
        for key, entry in items:
            tier.put(key, entry)  # type: ignore[arg-type]
        puts.append((time.process_time() - t0) / n * 1e6)
        held, get = [key for key, _ in items[-len(tier) :]], tier.get
        t0 = time.process_time()
        for key in held:
            get(key, now, None)
        hits.append((time.process_time() - t0) / len(held) * 1e6)
    print(f"| operation ({len(tier):,} entries held, 300-char answers) | CPU µs: median of {runs} (min-max) |")
    print("|---|---:|")
    for name, values in (("hit (`get`)", hits), (f"put ({n:,} in a row: the tier fills, then each put evicts)", puts)):
        print(f"| {name} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turnover", action="store_true", help="at the bound, with entries turning over")
    parser.add_argument("--cpu", action="store_true", help="CPU time per hit and per put")
    parser.add_argument("--bounds", default="256,16", help="MiB, comma-separated (default 256,16)")
    parser.add_argument("--turns", type=int, default=3, help="full turnovers after the first fill")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="answer text sizes in chars")
    parser.add_argument("--row", nargs=2, metavar=("SIZE", "BOUND_MIB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:  # one row, in a fresh process
        size, bound = int(args.row[0]), float(args.row[1])
        print(turnover(size, bound, args.turns) if args.turnover else fresh(size), flush=True)
        return
    if args.cpu:
        cpu()
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    me = [sys.executable, __file__, "--turns", str(args.turns)]
    if not args.turnover:
        print(f"| answer text (chars) | counted (MB) | RSS grown (MB) | RSS / counted |  ({N:,} entries each)")
        print("|---|---|---|---|")
        for size in sizes:
            subprocess.run([*me, "--row", str(size), "0"], check=True)
        return
    after = " | ".join(f"after turnover {t}" for t in range(1, args.turns + 1))
    head = "| bound (MiB) | answer text (chars) | entries held | counted (MB) | RSS grown / counted: first full"
    print(f"{head} | {after} | worst |")
    print("|---:|---:|---:|---:|---:|" + "---:|" * args.turns + "---:|")
    for bound in args.bounds.split(","):
        for size in sizes:
            subprocess.run([*me, "--turnover", "--row", str(size), bound], check=True)


if __name__ == "__main__":
    main()
