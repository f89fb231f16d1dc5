#!/usr/bin/env python3
"""The error budget on labelled traffic: does live precision pull the false-hit rate down by itself?

``tokenomy serve`` runs with the semantic tier on, every matcher setting at its default, and
``audit_share`` / ``max_false_hit_rate`` as given. Labelled pairs (``sentence1,sentence2,label`` or
STS-B, as ``end_to_end.py`` reads them) are asked in a shuffled order, each pair in its own
namespace, first question then second, as in ``end_to_end.py``: one stream of traffic of one task.

The fake upstream (a real HTTP server) answers like a model that knows the labels: the questions of
a pair labelled "same" (and, transitively, of every chain of such pairs) get one answer, every other
question an answer of its own, each a distinct sentence of random words. An audited hit therefore
compares the cached answer with the fresh one exactly as in production (same text, or MiniLM cosine
of the two answers ≥ ``audit_agreement``); a false hit is one on a pair labelled different.

Prints one row per window of pairs: hits, false hits by the labels, precision with its 95 %
Clopper-Pearson interval, audits made (of hits served, and while the task is suspended, shadow
audits of the hits it would have served) and how many found a false hit, and what the error budget
holds at the window's end: the threshold offset (``tokenomy_semantic_threshold_offset``) or
"suspended" (``tokenomy_semantic_suspended``)::

    .venv/bin/python bench/cache/error_budget.py --pairs FILE.csv [--audit-share 0.25] [--window 250]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import openai  # noqa: E402
from bench.cache.end_to_end import ask, exclusion_arguments, read  # noqa: E402
from bench.cache.verifier_cv import cp  # noqa: E402
from bench.gateway_proc import start_gateway  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from scipy.sparse import coo_matrix  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402
from tests.fakes.openai_upstream import OpenAIFake  # noqa: E402

from tokenomy.cache.semantic.calibrate import Pair  # noqa: E402

# fmt: off
WORDS = (
    "amber", "basket", "candle", "desert", "engine", "falcon", "garden", "harbor", "island", "jacket", "kettle",
    "ladder", "marble", "needle", "orchard", "pepper", "quarry", "ribbon", "saddle", "tunnel", "umbrella", "valley",
    "walnut", "yogurt", "zipper", "anchor", "blanket", "cactus", "dolphin", "feather", "glacier", "hammer", "igloo",
    "jungle", "kitten", "lantern", "meadow", "noodle", "oyster", "pillow", "quilt", "rocket", "spider", "tractor",
    "violin", "wagon", "yacht", "bicycle", "carpet", "diamond", "elbow", "forest", "guitar", "helmet", "insect",
    "jelly", "lemon", "mirror", "nickel", "onion", "parrot", "radio", "salmon", "tomato", "velvet", "window",
)
# fmt: on


class Answers:
    """Which answer each question gets: one per class of questions joined by pairs labelled "same"."""

    def __init__(self, pairs: list[Pair], seed: int) -> None:
        texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
        index = {t: i for i, t in enumerate(texts)}
        same = [(index[p.a], index[p.b]) for p in pairs if p.label == 1]
        rows, cols = [a for a, _ in same], [b for _, b in same]
        graph = coo_matrix((np.ones(len(same)), (rows, cols)), shape=(len(texts), len(texts)))
        _, labels = connected_components(graph, directed=False)
        self._class = {t: int(labels[i]) for t, i in index.items()}
        self._text: dict[int, str] = {}
        self._rng = random.Random(seed)

    def find(self, question: str) -> int:
        """The question's class (questions not in any pair get one of their own)."""
        return self._class.get(question, -1 - hash(question) % (1 << 30))

    def same(self, a: str, b: str) -> bool:
        """Whether the two questions get the same answer."""
        return self.find(a) == self.find(b)

    def __call__(self, question: str) -> str:
        root = self.find(question)
        if root not in self._text:
            self._text[root] = " ".join(self._rng.choice(WORDS) for _ in range(16)) + "."
        return self._text[root]


class LabelledFake(OpenAIFake):
    """An upstream whose answers follow the labels (see :class:`Answers`)."""

    def __init__(self, answers: Answers, **opts: Any) -> None:
        super().__init__(**opts)
        self.labelled = answers  # not ``answers``: the base class keeps its canned answers there

    def answer(self, model: str, user_text: str) -> str:
        return self.labelled(user_text)


@dataclass
class Window:
    """Outcomes of one window of pairs."""

    pairs: int = 0
    positives: int = 0
    tp: int = 0
    fp: int = 0
    errors: int = 0
    audits: dict[str, float] = field(default_factory=dict)
    offset: float = 0.0
    suspended: bool = False


def config(upstream: str, share: float, budget: float) -> str:
    return f"""
cache:
  semantic: {{enabled: true, audit_share: {share}, max_false_hit_rate: {budget}}}
models:
  - {{name: assistant, deployments: [{{provider: openai, base_url: "{upstream}", model: assistant-up}}]}}
"""


async def scrape(url: str) -> tuple[dict[str, float], float, bool]:
    """Audits by outcome (all tasks), the largest threshold offset and whether a task is suspended,
    from ``/metrics``."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    audits: dict[str, float] = {"agree": 0.0, "false": 0.0}
    offset, suspended = 0.0, False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tokenomy_semantic_audits_total":
                audits[sample.labels["outcome"]] = audits.get(sample.labels["outcome"], 0.0) + sample.value
            elif sample.name == "tokenomy_semantic_threshold_offset":
                offset = max(offset, sample.value)
            elif sample.name == "tokenomy_semantic_suspended":
                suspended = suspended or sample.value > 0
    return audits, offset, suspended


async def run_window(client: openai.AsyncOpenAI, start: int, pairs: list[Pair], concurrency: int) -> Window:
    window = Window(pairs=len(pairs))
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, pair: Pair) -> None:
        async with gate:
            try:
                await ask(client, f"p{start + i}", [{"role": "user", "content": pair.a}])
                _, cache, _ = await ask(client, f"p{start + i}", [{"role": "user", "content": pair.b}])
            except openai.APIError:
                window.errors += 1
                return
        hit = cache.startswith("hit")
        window.positives += pair.label
        window.tp += hit and pair.label == 1
        window.fp += hit and pair.label == 0

    await asyncio.gather(*(one(i, p) for i, p in enumerate(pairs)))
    return window


def row(first: int, w: Window, audits: dict[str, float]) -> str:
    hits = w.tp + w.fp
    low, high = cp(w.tp, hits)
    precision = f"{w.tp / hits:.3f} [{low:.3f}, {high:.3f}]" if hits else "-"
    recall = f"{w.tp / w.positives:.3f}" if w.positives else "-"
    state = "suspended" if w.suspended else f"{w.offset:+.2f}"
    return (f"| {first + 1}-{first + w.pairs} | {hits} | {w.fp} | {precision} | {recall} | "
            f"{audits['agree'] + audits['false']:.0f} | {audits['false']:.0f} | {state} | {w.errors} |")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, required=True, help="CSV (sentence1,sentence2,label) or STS-B")
    parser.add_argument("--audit-share", type=float, default=0.25, help="share of semantic hits audited")
    parser.add_argument("--budget", type=float, default=0.01, help="max_false_hit_rate")
    parser.add_argument("--window", type=int, default=250, help="pairs per printed row")
    parser.add_argument("--limit", type=int, default=0, help="first N pairs of the file (0: all)")
    parser.add_argument("--passes", type=int, default=1, help="ask the pairs this many times, each in a new order")
    parser.add_argument("--concurrency", type=int, default=4, help="pairs in flight at once")
    parser.add_argument("--seed", type=int, default=0, help="shuffle and answer seed")
    exclusion_arguments(parser)
    parser.add_argument("--positive-min", type=float, default=4.0, help="STS-B: score counted as the same question")
    parser.add_argument("--negative-max", type=float, default=2.0, help="STS-B: score counted as different")
    args = parser.parse_args()
    if not 0 <= args.audit_share <= 1 or not 0 < args.budget < 1 or args.window < 1 or args.passes < 1:
        parser.error("--audit-share must be in [0, 1], --budget in (0, 1), --window and --passes at least 1")
    pairs = read(parser, args.pairs, argparse.Namespace(**{**vars(args), "limit": 0, "group_column": None}))
    answers = Answers(pairs, args.seed)
    kept = [p for p in pairs if p.label == 1 or not answers.same(p.a, p.b)]
    kept = kept[: args.limit] if args.limit else kept
    consistent: list[Pair] = []
    for n in range(args.passes):  # each pass in a new order; every pair asked has a namespace of its own
        order = list(kept)
        random.Random(args.seed + n).shuffle(order)
        consistent += order
    rows, total = [], Window()
    async with LabelledFake(answers) as fake:
        await fake.start()
        with tempfile.TemporaryDirectory() as tmp:
            proc, url = await start_gateway(config(fake.base_url, args.audit_share, args.budget), Path(tmp))
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
            try:
                await ask(client, "warm-up", [{"role": "user", "content": "What is 2 + 2?"}])
                before = {"agree": 0.0, "false": 0.0}
                for first in range(0, len(consistent), args.window):
                    window = await run_window(client, first, consistent[first : first + args.window], args.concurrency)
                    await asyncio.sleep(1.0)  # the window's audits are answered in the background
                    seen, window.offset, window.suspended = await scrape(url)
                    rows.append(row(first, window, {k: seen[k] - before.get(k, 0.0) for k in seen}))
                    before = seen
                    for name in ("pairs", "positives", "tp", "fp", "errors"):
                        setattr(total, name, getattr(total, name) + getattr(window, name))
                    total.offset, total.suspended = window.offset, window.suspended
            finally:
                await client.close()
                proc.terminate()
                await proc.wait()
    skipped = len(pairs) - len([p for p in pairs if p.label == 1 or not answers.same(p.a, p.b)])
    print(f"{args.pairs.name}: {len(kept)} pairs x {args.passes} passes, each in a shuffled order (seeds from "
          f"{args.seed}; {skipped} pairs labelled different but joined by 'same' pairs left out), "
          f"audit_share {args.audit_share}, "
          f"max_false_hit_rate {args.budget}; each pair in its own namespace.\n")  # fmt: skip
    print("| pairs | hits | false hits (labels) | precision [95 % CI] | recall | audits | audits finding a false hit "
          "| threshold offset at the end, or suspended | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(row(0, total, before).replace(f"| 1-{total.pairs} |", f"| all {total.pairs} |", 1))


if __name__ == "__main__":
    asyncio.run(main())
