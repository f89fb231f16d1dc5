"""Route decision time: the route stage's own cost per request, by strategy and number of deployments.

In process, no sockets: the stage runs with a terminal handler that answers at once, so the time
is resolve + choose (health, limits, balancer) + bookkeeping. Prints a markdown table.

    .venv/bin/python bench/routing/decision.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time

from tokenomy.config import parse_config
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response
from tokenomy.pipeline.route import ModelTable, RouteStage

STRATEGIES = ("round-robin", "weighted", "least-busy", "lowest-latency", "cheapest")
SIZES = (2, 20, 200)
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
ANSWER = Completion({"choices": []})


def config_text(strategy: str, n: int, extra: str = "") -> str:
    rng = random.Random(n)
    deps = "\n".join(
        f'      - {{provider: openai, base_url: "http://d{i}.invalid/v1", name: d{i}, model: gpt-4o-mini,'
        f" weight: {rng.randint(1, 5)}, pricing: {{input_per_mtok: {rng.randint(1, 9)}, output_per_mtok: 1}}{extra}}}"
        for i in range(n)
    )
    return f"models:\n  - name: m\n    strategy: {strategy}\n    deployments:\n{deps}\n"


async def terminal(ctx: CallContext) -> Response:
    return ANSWER


async def measure(stage: RouteStage, iterations: int) -> tuple[float, float]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(iterations + 2000):
        ctx = CallContext(request_id="r", endpoint=Endpoint.CHAT, body=BODY, model="m")
        start = clock()
        await stage(ctx, terminal)
        if i >= 2000:  # warm-up excluded
            samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def build(strategy: str, n: int, extra: str = "", open_circuits: int = 0) -> RouteStage:
    stage = RouteStage(ModelTable(parse_config(config_text(strategy, n, extra))))
    slots = stage._plans["m"].pools[0].slots
    rng = random.Random(7)
    for slot in slots:  # measured latencies, so lowest-latency compares numbers rather than ties
        slot.stats.observe(rng.uniform(0.2, 0.8), False)
    for slot in slots[:open_circuits]:
        for _ in range(10):
            slot.health.failure(time.monotonic())
    return stage


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    print(f"Route decision time, {platform.python_version()}, {args.iterations} requests per row, µs per request.\n")
    print("| strategy | " + " | ".join(f"{n} deployments p50 / p99" for n in SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    rows = [(s, s, "", 0) for s in STRATEGIES]
    rows += [
        ("round-robin, 1 circuit open", "round-robin", "", 1),
        ("round-robin, rpm + tpm limits", "round-robin", ", rpm: 100000000, tpm: 100000000", 0),
    ]
    for label, strategy, extra, opened in rows:
        cells = []
        for n in SIZES:
            p50, p99 = await measure(build(strategy, n, extra, opened), args.iterations)
            cells.append(f"{p50:.1f} / {p99:.1f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    one = build("round-robin", 1)
    p50, p99 = await measure(one, args.iterations)
    print(f"\nOne deployment (the common case): {p50:.1f} / {p99:.1f} µs p50 / p99.")


if __name__ == "__main__":
    asyncio.run(main())
