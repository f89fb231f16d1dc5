"""Learned router on RouterBench: train on the `train` split, evaluate on the held-out `test` split.

Prints a markdown cost-quality table (each model, the oracle, the router at a few thresholds, as % of
gpt-4-1106-preview's accuracy and cost), the check against the random-mix line, and the decision
latency of ``LearnedRouter.choose`` given an embedding. Embedding ~1.9k prompts with MiniLM takes a
few minutes on 2 cores; ``--embedding-cache`` keeps them for re-runs.

    .venv/bin/python bench/routing/learned_router.py [--data PATH/routerbench_public.csv.gz] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tokenomy.routing.learned import LearnedRouter, evaluate, load_outcomes, train_router
from tokenomy.routing.learned.evaluate import Evaluation, Point, mix_accuracy, mix_frontier
from tokenomy.routing.learned.features import cached_embed, minilm_embed

DEFAULT_DATA = Path("/work/shared/data/routerbench_subset/routerbench_public.csv.gz")
REFERENCE = "gpt-4-1106-preview"
TARGET_ACCURACY = 0.97  # of the reference's accuracy ...
TARGET_COST = 0.40  # ... at no more than this share of its cost
SHOWN = (0.8, 0.85, 0.9, 0.95, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--embedding-cache", type=Path, default=Path(tempfile.gettempdir()) / "tokenomy-rb-emb.npz")
    parser.add_argument("--plot", type=Path, default=None, help="also write the cost-quality plot here")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data}: RouterBench outcomes not found (pass --data PATH to routerbench_public.csv.gz)")

    outcomes = load_outcomes(args.data)
    embed = cached_embed(minilm_embed(), args.embedding_cache)
    started = time.perf_counter()
    embed(outcomes.prompts)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    router = train_router(outcomes, embed, source=str(args.data))
    train_s = time.perf_counter() - started
    test = outcomes.split("test")
    embeddings = embed(test.prompts)
    result = evaluate(router, test, embeddings)
    if args.plot:
        from tokenomy.routing.learned.plot import plot_evaluation

        plot_evaluation(result, args.plot, title="Learned router on held-out RouterBench prompts")

    print(
        f"RouterBench subset: {router.meta['rows']} train rows, {result.rows} held-out test rows "
        f"({outcomes.skipped} rows skipped for an empty outcome); "
        f"embedding {embed_s:.0f} s (cached after the first run), training {train_s:.1f} s; "
        f"{platform.processor() or platform.machine()}\n"
    )
    print_table(result, router.threshold)
    print_mix_check(result)
    print_latency(router, embeddings, test.prompts)


def print_table(result: Evaluation, default: float) -> None:
    ref = result.baselines[REFERENCE]
    print("| policy | accuracy | cost (USD) | % of gpt-4 accuracy | % of gpt-4 cost |")
    print("|---|---:|---:|---:|---:|")
    for name, point in sorted(result.baselines.items(), key=lambda kv: kv[1].cost_usd):
        print(_row(name, point, ref))
    print(_row("**oracle**", result.oracle, ref))
    meeting = [p for p in result.curve if p.accuracy >= TARGET_ACCURACY * ref.accuracy]
    cheapest = min(meeting, key=lambda p: p.cost_usd) if meeting else None
    rows: dict[float, str] = {t: f"router, threshold {t:.2f}" for t in SHOWN}
    rows[default] = f"**router, default threshold {default:.2f}** (chosen by CV on train)"
    if cheapest is not None and cheapest.threshold is not None and cheapest.threshold not in rows:
        rows[cheapest.threshold] = f"router, threshold {cheapest.threshold:.2f} (cheapest point meeting the target)"
    for t in sorted(rows):
        print(_row(rows[t], result.at(t), ref))
    point = result.at(default)
    met = point.accuracy >= TARGET_ACCURACY * ref.accuracy and point.cost_usd <= TARGET_COST * ref.cost_usd
    print(
        f"\nTarget (>= {TARGET_ACCURACY:.0%} of gpt-4's accuracy at <= {TARGET_COST:.0%} of its cost) "
        f"at the default threshold: {'met' if met else 'NOT met'}"
        + (
            f"; cheapest curve point meeting the accuracy bar: threshold {cheapest.threshold:.2f}, "
            f"{cheapest.cost_usd / ref.cost_usd:.1%} of gpt-4's cost"
            if cheapest
            else ""
        )
    )


def _row(name: str, point: Point, ref: Point) -> str:
    return (
        f"| {name} | {point.accuracy:.3f} | {point.cost_usd:.3f} | {point.accuracy / ref.accuracy:.1%} "
        f"| {point.cost_usd / ref.cost_usd:.1%} |"
    )


def print_mix_check(result: Evaluation) -> None:
    hull = mix_frontier(result.baselines)
    gaps = [(p.accuracy - mix_accuracy(hull, p.cost_usd), p) for p in result.curve]
    worst, where = min(gaps, key=lambda g: g[0])
    below = [p for gap, p in gaps if gap < -1e-9]
    one = 1 / result.rows
    print(
        f"\nRandom-mix line (upper hull of the single models): the curve is above it at {len(gaps) - len(below)} "
        f"of {len(gaps)} thresholds; lowest margin {worst * 100:+.2f} pp at threshold {where.threshold:.2f} "
        f"(cost {where.cost_usd:.4f} USD; one prompt = {one * 100:.2f} pp)"
        + (f"; below at thresholds {', '.join(f'{p.threshold:.2f}' for p in below)}" if below else "")
    )


def print_latency(router: LearnedRouter, embeddings: np.ndarray, prompts: list[str]) -> None:
    choose = router.choose
    for embedding, prompt in zip(embeddings[:200], prompts[:200], strict=False):
        choose(embedding, prompt)
    times = []
    for _ in range(10):
        for embedding, prompt in zip(embeddings, prompts, strict=True):
            start = time.perf_counter()
            choose(embedding, prompt)
            times.append(time.perf_counter() - start)
    p50, p99 = np.percentile(times, [50, 99]) * 1e6
    print(
        f"\nDecision latency (choose, given the embedding; {len(times)} calls over the test prompts): "
        f"p50 {p50:.0f} us, p99 {p99:.0f} us"
    )


if __name__ == "__main__":
    main()
