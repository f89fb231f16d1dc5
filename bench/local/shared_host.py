"""The embedded model on a shared, CPU-limited host: threads, a busy neighbour, the loop guard.

One command: ``.venv/bin/python bench/local/shared_host.py`` (about a minute). It prints a
markdown table:

1. Seconds for a 64-token answer (greedy decoding, end-of-sequence banned so every run makes
   exactly 64 tokens) by SmolLM2-135M-Instruct with the process pinned to ONE CPU (as in a
   container with a one-CPU quota, or a process given one core), with and without another process
   spinning on that CPU: llama.cpp with ``os.cpu_count()`` threads (the old default) against the
   CPUs the process may use (the default now, ``providers/local/cpus.py``). Each configuration
   runs in its own process; median and min-max of ``--runs`` answers after one warm-up.
2. Tokens generated at temperature 0 for a prompt that loops ("la Femme, la Femme, ..."), with
   ``max_tokens`` 96: loop guard off and on (repeat penalty 1.1 in both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tokenomy.providers.local.generation import Finished, LlamaEngine  # noqa: E402
from tokenomy.providers.local.params import ChatPrompt, GenerationParams, TextPrompt  # noqa: E402

STORY = ChatPrompt(({"role": "user", "content": "Write a short story about a robot who learns to paint."},))
EOS_BAN = {2: -100.0, 0: -100.0}
LOOP = TextPrompt(text="la Femme, la Femme, la Femme, la Femme,")


async def _answer(engine: LlamaEngine, prompt: ChatPrompt | TextPrompt, params: GenerationParams) -> Finished:
    handle = engine.submit(prompt, params)
    async for event in handle.events():
        if isinstance(event, Finished):
            return event
    raise RuntimeError("no answer")


def worker(threads: int, runs: int) -> None:
    """Pinned to CPU 0: time ``runs`` 64-token answers; print JSON seconds."""
    os.sched_setaffinity(0, {0})
    engine = LlamaEngine(n_threads=threads)
    engine.load(warm_up=True)
    params = GenerationParams(max_tokens=64, temperature=0.0, top_p=1.0, logit_bias=EOS_BAN)
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        asyncio.run(_answer(engine, STORY, params))
        if i:
            times.append(time.perf_counter() - started)
    engine.close()
    print(json.dumps(times))


def measure(threads: int, runs: int, busy: bool) -> list[float]:
    hog = None
    if busy:
        hog = subprocess.Popen(
            [sys.executable, "-c", "import os; os.sched_setaffinity(0, {0})\nwhile True: pass"],
        )
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", str(threads), "--runs", str(runs)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return [float(t) for t in json.loads(out.stdout.strip().splitlines()[-1])]


def loop_tokens(guard: bool) -> int:
    engine = LlamaEngine(n_threads=1, loop_guard=guard)
    engine.load(warm_up=False)
    done = asyncio.run(_answer(engine, LOOP, GenerationParams(max_tokens=96, temperature=0.0, top_p=1.0)))
    engine.close()
    return done.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.runs)
        return
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, load average {os.getloadavg()[0]:.1f} at start; process pinned to 1 CPU\n")
    print("| threads | neighbour spinning on the same CPU | s per 64-token answer: median (min-max) | answers |")
    print("|---|---|---|---|")
    for busy in (False, True):
        for threads, label in ((cores, f"{cores} (os.cpu_count(), old default)"), (1, "1 (usable CPUs, default now)")):
            times = measure(threads, args.runs, busy)
            spread = f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})"
            print(f"| {label} | {'yes' if busy else 'no'} | {spread} | {len(times)} |")
    print("\n| loop guard | tokens generated for a looping prompt (max_tokens 96, temperature 0) |")
    print("|---|---|")
    for guard in (False, True):
        print(f"| {'on' if guard else 'off'} | {loop_tokens(guard)} |")


if __name__ == "__main__":
    main()
