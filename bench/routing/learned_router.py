"""Learned router families side by side, on prompts none of them was trained or tuned on.

Three setups, every figure measured on rows held out from training (hyperparameters, family and the
default knob position are chosen by cross-validation inside the training rows only):

* RouterBench, public split: train on `train`, evaluate on `test`;
* RouterBench, 5-fold cross-validation over all rows (folds grouped by prompt text), pooled;
* RouteLLM MMLU (gpt-4-1106-preview vs Mixtral-8x7B, list prices): train on the 80% of prompts the
  outcomes loader assigns to `train` by prompt hash, evaluate on the other 20%.

Per family (and `auto`, the family `router train` picks by out-of-fold area in each training set):
the cost at 95% and 97% of the best model's accuracy (cheapest knob position reaching it), the
area (accuracy averaged over cost, from the cheapest model's cost to the best model's; the best
accuracy reachable at each cost), the lowest margin over the random-mix line, the default
operating point, and the CPU time of one ``choose`` call given the embedding (thread CPU time, so
other work on a shared machine does not inflate it). Embeddings are cached
in ``--embedding-cache`` (the first run embeds ~16k prompts: many minutes on 2 cores).

    .venv/bin/python bench/routing/learned_router.py [--quick] [--only routerbench|mmlu]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokenomy.routing.learned import LearnedRouter, Outcomes, load_outcomes, train_router
from tokenomy.routing.learned.evaluate import POSITIONS, Point, mix_accuracy, mix_frontier, router_embeddings
from tokenomy.routing.learned.features import Embed, cached_embed, minilm_embed
from tokenomy.routing.learned.knob import mix_draws, picks_at
from tokenomy.routing.learned.outcomes import CostSpec
from tokenomy.routing.learned.router import vertex_picks
from tokenomy.routing.learned.train import TrainOptions, fold_ids

DATA = Path(__file__).parent / "data"  # copies of the public files, see data/SOURCE.md
ROUTERBENCH = DATA / "routerbench_public.csv.gz"
MMLU = DATA / "mmlu_responses.csv.gz"
GPT4, MIXTRAL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
MMLU_PRICES = CostSpec(per_token={GPT4: (10.0, 30.0), MIXTRAL: (0.6, 0.6)}, output_tokens=1)


@dataclass
class Held:
    """One family's held-out decisions: per knob position, the picks for the held rows."""

    scores: list[np.ndarray]
    costs: list[np.ndarray]
    picks: list[np.ndarray]  # (positions, rows) per chunk
    expected: list[np.ndarray]  # (vertices, 2) per chunk: each knob vertex's cost and correct answers summed
    default: list[np.ndarray]
    latency_us: list[float]
    draws: list[np.ndarray]  # the held-out prompts' mixing draws, per chunk
    trained_s: float = 0.0


def held_out(router: LearnedRouter, rows: Outcomes, embed: Embed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Picks at each knob position (mixing by the prompts' draws), each knob vertex's cost and correct
    answers summed over the prompts, and the default position's picks."""
    emb = router_embeddings(router, embed, rows.prompts)
    success = router.predict(emb, rows.prompts)
    cost = router.estimate_cost(rows.prompts)
    picks = vertex_picks(router.knob, success, cost, router.rule)
    draws = mix_draws(rows.prompts)
    grid = np.stack([picks_at(router.knob, p, picks, draws) for p in POSITIONS])
    # between two vertices a share q of prompts takes the upper one's decision, so the expected cost
    # and accuracy are linear in q: the vertices, measured on these prompts, define the expected curve
    index = np.arange(len(rows))
    at_vertex = np.array([(rows.costs[index, p].sum(), rows.scores[index, p].sum()) for p in picks])
    return grid, at_vertex, picks_at(router.knob, router.knob.default, picks, draws)


def latency(router: LearnedRouter, rows: Outcomes, embed: Embed, n: int = 300) -> list[float]:
    prompts = rows.prompts[:n]
    vectors = [embed(router.embedding_texts(p)) for p in prompts]
    for v, p in zip(vectors, prompts, strict=True):
        router.choose(v, p)
    out = []
    for _ in range(3):
        for v, p in zip(vectors, prompts, strict=True):
            start = time.thread_time_ns()  # CPU time of this thread: stable on a shared, busy machine
            router.choose(v, p)
            out.append((time.thread_time_ns() - start) / 1e3)
    return out


def run_setup(
    splits: list[tuple[Outcomes, Outcomes]], embed: Embed, families: list[str], options: TrainOptions
) -> dict[str, Held]:
    held = {f: Held([], [], [], [], [], [], []) for f in [*families, "auto"]}
    for number, (train, test) in enumerate(splits, start=1):
        areas: dict[str, float] = {}
        results: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        timings: dict[str, list[float]] = {}
        for family in families:
            started = time.perf_counter()
            router = train_router(train, embed, dataclasses.replace(options, family=family, split=None))
            held[family].trained_s += time.perf_counter() - started
            areas[family] = router.meta["families"][family]["area"]
            results[family] = held_out(router, test, embed)
            timings[family] = latency(router, test, embed)
            held[family].latency_us += timings[family]
            print(f"  split {number}/{len(splits)} {family}: trained in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
        best = max(areas, key=lambda f: areas[f])
        for family, (grid, expected, default) in [*results.items(), ("auto", results[best])]:
            h = held[family]
            h.scores.append(test.scores)
            h.costs.append(test.costs)
            h.picks.append(grid)
            h.expected.append(expected)
            h.draws.append(mix_draws(test.prompts))
            h.default.append(default)
        held["auto"].latency_us += timings[best]
        print(f"  split {number}: auto picks {best} ({', '.join(f'{f} {a:.4f}' for f, a in areas.items())})",
              file=sys.stderr, flush=True)  # fmt: skip
    return held


def report(title: str, held: dict[str, Held], models: list[str]) -> None:
    first = next(iter(held.values()))
    scores, costs = np.vstack(first.scores), np.vstack(first.costs)
    n = len(scores)
    single = {m: (float(scores[:, i].mean()), float(costs[:, i].sum())) for i, m in enumerate(models)}
    best = max(single, key=lambda m: single[m][0])
    best_acc, best_cost = single[best]
    lo = min(c for _, c in single.values())
    hull = mix_frontier({m: Point(a, c) for m, (a, c) in single.items()})
    mix_area = _area([(c, a) for a, c in single.values()], lo, best_cost)
    print(f"\n### {title}\n\n{n} held-out prompts; best single model {best}: accuracy {best_acc:.3f}, "
          f"cost {best_cost:.3f} USD; area of the single models (no mixing) {mix_area:.4f}\n")  # fmt: skip
    print("| family | cost at 95% of best acc. | cost at 97% | area | lowest margin over random mix (pp) "
          "| expected over the mixing draw: cost at 95% / 97% / lowest margin (pp) "
          "| default point: % of best acc. / % of best cost | decision CPU time p50 / p99 (µs) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for family, h in held.items():
        rows = np.arange(n)
        picks = np.hstack(h.picks)  # (positions, n)
        curve = [(float(costs[rows, p].sum()), float(scores[rows, p].mean())) for p in picks]
        default = np.concatenate(h.default)
        d_acc, d_cost = float(scores[rows, default].mean()), float(costs[rows, default].sum())
        gap = min(a - mix_accuracy(hull, c) for c, a in curve)
        p50, p99 = np.percentile(h.latency_us, [50, 99]) if h.latency_us else (float("nan"),) * 2
        at95, at97 = _at(curve, 0.95 * best_acc, best_cost), _at(curve, 0.97 * best_acc, best_cost)
        area = _area(curve, lo, best_cost)
        default_point = f"{d_acc / best_acc:.1%} / {d_cost / best_cost:.1%}"
        lat = f"{p50:.0f} / {p99:.0f}"
        e_at = _expected(h, models.index(best))
        print(f"| {family} | {at95} | {at97} | {area:.4f} | {gap * 100:+.2f} | {e_at} | {default_point} | {lat} |")
    print(f"\nThe random mix itself, realised with the same per-prompt draws: lowest margin under its expected "
          f"line {_mix_noise(scores, costs, hull, models, first.draws) * 100:+.2f} pp (sampling noise of mixing on "
          f"{n} prompts).")  # fmt: skip
    oracle_best = scores.max(axis=1)
    print(f"\nOracle: {oracle_best.mean() / best_acc:.1%} of the best model's accuracy; one prompt = "
          f"{100 / n:.2f} pp. Training time per family (all splits): "
          + ", ".join(f"{f} {h.trained_s:.0f} s" for f, h in held.items() if f != "auto"))  # fmt: skip


def _expected(h: Held, best: int) -> str:
    """Cost at 95% / 97% of the best model's accuracy and the lowest margin over the random mix, in
    expectation over the mixing draw. Each split's curve and random-mix line are put on its own cost
    share of the best model, then averaged over splits at equal cost share (weighted by rows):
    averaging splits at equal knob *position* would mix different costs and dip under a concave line."""
    shares = np.linspace(0.0, 1.0, 2001)
    curve, mix, best_acc, total = np.zeros_like(shares), np.zeros_like(shares), 0.0, 0
    for scores, costs, expected in zip(h.scores, h.costs, h.expected, strict=True):
        n, ref = len(scores), float(costs[:, best].sum())
        x, y = expected[:, 0] / ref, expected[:, 1] / n
        order = np.argsort(x, kind="stable")
        x, y = x[order], np.maximum.accumulate(y[order])  # the best accuracy reachable at that cost share
        curve += n * np.interp(shares, x, y)
        single = {
            str(m): Point(float(scores[:, m].mean()), float(costs[:, m].sum()) / ref) for m in range(costs.shape[1])
        }
        frontier = mix_frontier(single)
        mix += n * np.array([mix_accuracy(frontier, float(c)) for c in shares])
        best_acc += float(scores[:, best].sum())
        total += n
    curve, mix, best_acc = curve / total, mix / total, best_acc / total

    def at(target: float) -> str:
        reached = np.nonzero(curve >= target - 1e-12)[0]
        return f"{shares[reached[0]]:.1%}" if len(reached) else "not reached"

    return f"{at(0.95 * best_acc)} / {at(0.97 * best_acc)} / {float((curve - mix).min()) * 100:+.2f}"


def _mix_noise(
    scores: np.ndarray, costs: np.ndarray, hull: list[tuple[float, float]], models: list[str], draws: list[np.ndarray]
) -> float:
    """Lowest (realised - expected) accuracy of the random mix of models along its line, on these prompts."""
    d = np.concatenate(draws)
    rows = np.arange(len(d))
    totals = [(float(costs[:, i].sum()), float(scores[:, i].mean())) for i in range(len(models))]
    columns = [next(i for i, t in enumerate(totals) if t == vertex) for vertex in hull]
    worst = 0.0
    for a, b in itertools.pairwise(columns):
        for q in np.linspace(0, 1, 101):
            pick = np.where(d < q, b, a)
            cost = float(costs[rows, pick].sum())
            worst = min(worst, float(scores[rows, pick].mean()) - mix_accuracy(hull, cost))
    return worst


def _at(curve: list[tuple[float, float]], accuracy: float, ref_cost: float) -> str:
    reaching = [c for c, a in curve if a >= accuracy]
    return f"{min(reaching) / ref_cost:.1%}" if reaching else "not reached"


def _area(curve: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Best accuracy reachable at cost <= c (a step function), averaged over c in [lo, hi]."""
    grid = np.linspace(lo, hi, 1001)
    return float(np.mean([max((a for c, a in curve if c <= x + 1e-12), default=0.0) for x in grid]))


def routerbench(embed: Embed, families: list[str], options: TrainOptions, folds: int) -> None:
    outcomes = load_outcomes(ROUTERBENCH)
    print(
        f"RouterBench subset: {len(outcomes)} rows ({outcomes.skipped} skipped for an empty outcome)", file=sys.stderr
    )
    held = run_setup([(outcomes.split("train"), outcomes.split("test"))], embed, families, options)
    report("RouterBench, public split (train 1,319 rows, test 565 rows)", held, outcomes.models)
    ids = fold_ids(outcomes.prompts, folds, 0)
    splits = [(outcomes.select(ids != f), outcomes.select(ids == f)) for f in range(folds)]
    held = run_setup(splits, embed, families, options)
    report(f"RouterBench, {folds}-fold cross-validation over all {len(outcomes)} rows (pooled)", held, outcomes.models)


def mmlu(embed: Embed, families: list[str], options: TrainOptions) -> None:
    outcomes = load_outcomes(MMLU, MMLU_PRICES)
    held = run_setup([(outcomes.split("train"), outcomes.split("test"))], embed, [*families, "winprob"], options)
    report(
        "RouteLLM MMLU, gpt-4-1106-preview vs Mixtral-8x7B ($10/$30 vs $0.6/$0.6 per 1M tokens), 80/20 by prompt hash",
        held,
        outcomes.models,
    )
    print(f"\n(trained on {len(outcomes.split('train'))} rows)")
    _calls_to_gpt4(held, outcomes.split("test"))


def _calls_to_gpt4(held: dict[str, Held], test: Outcomes) -> None:
    """Share of calls to gpt-4 at 95% of its accuracy, and RouteLLM's CPT(50%) / CPT(80%): the share of
    calls to the strong model needed to recover 50% / 80% of the accuracy gap between the two models."""
    strong, weak = test.models.index(GPT4), test.models.index(MIXTRAL)
    rows = np.arange(len(test))
    acc_strong, acc_weak = float(test.scores[:, strong].mean()), float(test.scores[:, weak].mean())

    def calls(picks: np.ndarray, accuracy: float) -> str:
        shares = [float((p == strong).mean()) for p in picks if test.scores[rows, p].mean() >= accuracy - 1e-12]
        return f"{min(shares):.1%}" if shares else "not reached"

    print("\n| family | calls to gpt-4 at 95% of its accuracy | CPT(50%) | CPT(80%) |")
    print("|---|---:|---:|---:|")
    print(f"| random mix | {(0.95 * acc_strong - acc_weak) / (acc_strong - acc_weak):.1%} | 50.0% | 80.0% |")
    for family, h in held.items():
        picks = h.picks[0]
        gap = acc_strong - acc_weak
        print(f"| {family} | {calls(picks, 0.95 * acc_strong)} | {calls(picks, acc_weak + 0.5 * gap)} "
              f"| {calls(picks, acc_weak + 0.8 * gap)} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding-cache", type=Path, default=Path(tempfile.gettempdir()) / "tokenomy-router-emb.npz")
    parser.add_argument("--only", choices=["routerbench", "mmlu"], default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller hyperparameter grids (a smoke run)")
    parser.add_argument(
        "--arithmetic", choices=["float32", "int8"], default="float32", help="the embedder's (give each its own cache)"
    )
    args = parser.parse_args()
    for path in (ROUTERBENCH, MMLU):
        if not path.is_file():
            sys.exit(f"{path}: not found (the public RouterBench subset and RouteLLM MMLU outcomes)")
    embed = cached_embed(minilm_embed(arithmetic=args.arithmetic), args.embedding_cache)
    options = TrainOptions(mf_ranks=(4,), mf_penalties=(30.0,), knn_ks=(10, 40)) if args.quick else TrainOptions()
    families = ["logistic", "knn", "mf"]
    print("# Learned router families on held-out prompts\n")
    print("Cost and accuracy are over held-out prompts only; cost shares are of the best single model's cost.")
    if args.only in (None, "routerbench"):
        routerbench(embed, families, options, args.folds)
    if args.only in (None, "mmlu"):
        mmlu(embed, families, options)


if __name__ == "__main__":
    main()
