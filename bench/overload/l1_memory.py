"""Level-1 cache accounting against real memory: what the byte bound counts vs the process's RSS.

Fills a level-1 tier (no size limit) with 100,000 chat-completion answers built the way the
gateway builds them (``orjson.dumps``) at three answer sizes, and prints what the tier counted
against the RSS the process grew by. One command: ``python bench/overload/l1_memory.py``.
"""

from __future__ import annotations

import gc
import hashlib
import os
import subprocess
import sys
import time

N = 100_000


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def one(size: int) -> str:
    import orjson

    from tokenomy.cache.entry import CacheEntry
    from tokenomy.cache.memory import MemoryTier

    tier = MemoryTier(10**12)
    gc.collect()
    base = _rss()
    now = time.time()
    for i in range(N):
        answer = {"id": f"chatcmpl-{i}", "choices": [{"message": {"content": "x" * size}}], "usage": {}}
        key = hashlib.sha256(str(i).encode()).hexdigest()
        tier.put(key, CacheEntry(orjson.dumps(answer), now, now + 3600, "fast", "untagged", "t/default/"))
    gc.collect()
    grown = _rss() - base
    return f"| {size:,} | {tier.bytes_used / 1e6:.1f} | {grown / 1e6:.1f} | {grown / tier.bytes_used:.2f} |"


def main() -> None:
    if len(sys.argv) > 1:  # one size, in a fresh process
        print(one(int(sys.argv[1])))
        return
    print(f"| answer text (chars) | counted (MB) | RSS grown (MB) | RSS / counted |  ({N:,} entries each)")
    print("|---|---|---|---|")
    for size in (100, 1_000, 4_000):
        subprocess.run([sys.executable, __file__, str(size)], check=True)


if __name__ == "__main__":
    main()
