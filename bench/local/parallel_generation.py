"""Concurrent chat requests to the embedded model, one at a time vs decoded together: one table.

``.venv/bin/python bench/local/parallel_generation.py`` sends N concurrent greedy chat requests
(N = 1, 4, 8; different prompts that answer at length, ``max_tokens`` 48) straight into
``LocalProvider.send`` (no HTTP), with ``local.generation.parallel`` 1 (one request at a time,
as before) and ``--parallel`` (default 8; the gateway's ``auto`` uses 4 for f16 files) (decoded
together), and prints completion tokens/s of all requests together
(wall-clock) and process CPU ms per completion token (stable on a shared machine; prompt reading
included). Both settings are loaded at once and their rounds alternate; each cell is the
median-rate round of ``--reps``. With more than one llama.cpp thread the two settings run one
after the other instead (two engines computing in one process slow each other down). The variant
served is the one the gateway chooses on this CPU unless ``--model-path`` names a GGUF file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tokenomy.config.models import Deployment, GatewayConfig  # noqa: E402
from tokenomy.pipeline.context import CallContext, Completion, Endpoint  # noqa: E402
from tokenomy.providers.local.catalog import GENERATION_MODEL  # noqa: E402
from tokenomy.providers.local.provider import LocalProvider  # noqa: E402

TOPICS = ["a cat", "the sea", "a city at night", "a mountain", "a robot", "the moon", "a forest", "a train"]
CONCURRENCY = (1, 4, 8)


async def round_(provider: LocalProvider, n: int, max_tokens: int) -> tuple[int, float, float]:
    """``n`` concurrent requests: (completion tokens, wall s, process CPU s)."""
    dep = Deployment(provider="local", model=GENERATION_MODEL)

    async def one(topic: str) -> int:
        body: dict[str, Any] = {
            "model": GENERATION_MODEL,
            "messages": [{"role": "user", "content": f"Write a long story about {topic}."}],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        response = await provider.send(CallContext("bench", Endpoint.CHAT, body, GENERATION_MODEL), dep)
        assert isinstance(response, Completion)
        return int(response.body["usage"]["completion_tokens"])

    cpu, wall = time.process_time(), time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(TOPICS[i % len(TOPICS)]) for i in range(n))))
    return tokens, time.perf_counter() - wall, time.process_time() - cpu


def provider_for(parallel: int, args: argparse.Namespace) -> LocalProvider:
    generation: dict[str, Any] = {"parallel": parallel, "n_threads": args.threads}
    if args.model_path:
        generation["model_path"] = args.model_path
    config = GatewayConfig.model_validate(
        {
            "models": [{"name": GENERATION_MODEL, "deployments": [{"provider": "local", "model": GENERATION_MODEL}]}],
            "local": {"generation": generation},
        }
    )
    return LocalProvider(config)


async def measure(
    args: argparse.Namespace, settings: tuple[int, ...]
) -> tuple[str, dict[int, dict[int, tuple[float, float]]]]:
    """The settings loaded side by side, their rounds interleaved; the median-rate round per cell."""
    providers = {parallel: provider_for(parallel, args) for parallel in settings}
    for provider in providers.values():
        await provider.start()
    generator = providers[settings[0]].generator
    assert generator is not None
    out: dict[int, dict[int, tuple[float, float]]] = {parallel: {} for parallel in providers}
    try:
        for provider in providers.values():
            await round_(provider, 1, 8)  # warm-up
        for n in CONCURRENCY:
            rounds: dict[int, list[tuple[int, float, float]]] = {parallel: [] for parallel in providers}
            for _ in range(args.reps):
                for parallel, provider in providers.items():
                    rounds[parallel].append(await round_(provider, n, args.max_tokens))
            for parallel, kept in rounds.items():
                tokens, wall, cpu = sorted(kept, key=lambda r: r[0] / r[1])[len(kept) // 2]
                out[parallel][n] = (tokens / wall, cpu * 1000 / tokens)
    finally:
        for provider in providers.values():
            await provider.close()
    return generator.model_path.name, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--parallel", type=int, default=8, help="sequences decoded together (2-64)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: usable CPUs)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--model-path", default=None, help="a GGUF file (default: the variant chosen on this CPU)")
    args = parser.parse_args()
    if args.threads == 1:
        served, results = asyncio.run(measure(args, (1, args.parallel)))
    else:  # two llama.cpp threads each running multi-threaded compute slow both down: one at a time
        served, results = asyncio.run(measure(args, (1,)))
        results.update(asyncio.run(measure(args, (args.parallel,)))[1])
    print(
        f"{served}, {args.max_tokens} tokens max per answer, greedy, {args.threads or 'all usable'} llama.cpp "
        f"thread(s), median of {args.reps} rounds; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}."
    )
    print()
    print(
        f"| concurrent requests | one at a time: tok/s | CPU ms / token | decoded together (parallel {args.parallel}): "
        "tok/s | "
        "CPU ms / token | tok/s gain | CPU gain |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in CONCURRENCY:
        (rate1, cpu1), (rate_n, cpu_n) = results[1][n], results[args.parallel][n]
        gains = f"{rate_n / rate1:.2f}x | {cpu1 / cpu_n:.2f}x"
        print(f"| {n} | {rate1:.1f} | {cpu1:.2f} | {rate_n:.1f} | {cpu_n:.2f} | {gains} |")


if __name__ == "__main__":
    main()
