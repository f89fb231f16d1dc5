#!/usr/bin/env python3
"""The semantic cache as a new user meets it: a real gateway, default settings, labelled pairs.

``tokenomy serve`` runs with ``cache.semantic.enabled: true`` and every other setting at its
default, in front of a fake OpenAI upstream (``tests/fakes``, a real HTTP server). For each
labelled pair (``sentence1,sentence2,label``, 1 = same question; or an STS-B file: score >= 4 same,
<= 2 different, or as ``--positive-min`` / ``--negative-max`` say) the official ``openai`` client
asks the first question (``temperature: 0``: only deterministic requests are cached by default),
then -- as soon as the answer has arrived -- the second, both in a namespace of their own
(``x-tokenomy-cache-namespace``), so no pair sees another's entries. A hit on the second question
(``x-tokenomy-cache``: ``hit-semantic`` or ``hit-exact``) predicts "same question".

It also asks **follow-ups in another conversation**: two conversations that differ in their first
question and end with the same follow-up ("Why is that?"), the second must never hit the first.

Prints, per pair file, precision and recall with Clopper-Pearson 95 % intervals and how many
accepted hits each rests on, the false hits' texts, and the follow-up result. A label check says
how many pairs are the same text up to case and punctuation yet labelled different (a floor on the
file's label noise), and marks false hits that are the same text or share all their numbers and
content words (``[same text]``, ``[same words]``: where a label is most likely disputed)::

    .venv/bin/python bench/cache/end_to_end.py --pairs FILE.csv [FILE ...] [--limit N] [--concurrency 4]

Any pair file works: this is the command to check the defaults on pairs from your own traffic.
``--overlap S --upstream-delay D`` asks the second question S seconds after the first was *sent*,
while the upstream takes D seconds to answer: with S < D the first is still in flight, which is
where ``coalesce`` (on by default; ``--no-coalesce`` to compare) lets the second wait for it.
``--arithmetic int8|float32`` overrides ``cache.semantic.arithmetic`` (decisions can differ by a pair
or two between the two; the output says which one ran). ``--tuned DIR`` serves the model and
verifier ``tokenomy cache tune --out DIR`` wrote. ``--exclude SEEN.csv`` drops the pairs that
also occur in ``SEEN.csv`` (e.g. the public half the matcher was trained on), and
``--exclude-sentences`` also those sharing a question with it, so the
rest is data the matcher never saw. ``--group-column NAME`` (CSV pairs with a column saying who or
where each pair comes from, e.g. the writer) adds each group's hits and false hits and a precision
interval that resamples whole groups::

    git clone https://github.com/redislabsdev/langcache-customer-data-eval /tmp/lc
    .venv/bin/python bench/cache/end_to_end.py --pairs /tmp/lc/dataset/chatgpt.csv \
        --exclude ../shared/data/langcache_query_pairs/pairs.csv
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import openai  # noqa: E402
from bench.cache.verifier_cv import cp  # noqa: E402
from bench.gateway_proc import pct, start_gateway  # noqa: E402
from tests.fakes.openai_upstream import OpenAIFake  # noqa: E402

from tokenomy.cache.semantic.calibrate import Pair, label_conflicts, load_pairs  # noqa: E402
from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic  # noqa: E402
from tokenomy.cache.semantic.features import normalized  # noqa: E402
from tokenomy.cache.semantic.float_cross_encoder import resolve  # noqa: E402
from tokenomy.cache.semantic.verify import signature  # noqa: E402
from tokenomy.providers.local.cpus import cpu_info, fast_int8  # noqa: E402

FOLLOW_UPS = (
    "Why is that?",
    "Can you explain that in more detail?",
    "Give me an example.",
    "And how long does that take?",
    "What about the second one?",
    "Is there a cheaper option?",
    "Summarize that in one sentence.",
    "What are the risks?",
)


@dataclass
class Tally:
    """Outcomes of one pair file."""

    tp: int = 0
    fp: int = 0
    positives: int = 0
    negatives: int = 0
    semantic_hits: int = 0
    errors: int = 0
    false_hits: list[tuple[str, str]] = field(default_factory=list)
    outcomes: list[tuple[str, bool, bool]] = field(default_factory=list)
    """(group, hit, same question) of every pair answered."""
    hit_ms: list[float] = field(default_factory=list)
    miss_ms: list[float] = field(default_factory=list)


def config(upstream: str, coalesce: bool = True, arithmetic: str = "auto", tuned: Path | None = None) -> str:
    """Every setting at its default but the semantic tier (on), the upstream (the fake) and what the options change."""
    extra = ("" if coalesce else ", coalesce: false") + ("" if arithmetic == "auto" else f", arithmetic: {arithmetic}")
    if tuned is not None:  # the files `tokenomy cache tune --out DIR` writes
        extra += f', model_path: "{tuned.resolve() / "cross-encoder.w8.onnx"}"'
        extra += f', verifier_path: "{tuned.resolve() / "verifier.json"}"'
    return f"""
cache:
  semantic: {{enabled: true{extra}}}
models:
  - {{name: assistant, deployments: [{{provider: openai, base_url: "{upstream}", model: assistant-up}}]}}
"""


async def ask(client: openai.AsyncOpenAI, namespace: str, messages: list[dict[str, str]]) -> tuple[str, str, float]:
    """One chat completion; returns the answer, the cache header and the latency in ms."""
    start = time.perf_counter()
    raw = await client.chat.completions.with_raw_response.create(
        model="assistant",
        messages=messages,  # type: ignore[arg-type]
        temperature=0,  # only deterministic requests are cached by default (docs/caching.md)
        extra_headers={"x-tokenomy-cache-namespace": namespace},
    )
    elapsed = (time.perf_counter() - start) * 1000
    reply = raw.parse()
    return reply.choices[0].message.content or "", raw.headers.get("x-tokenomy-cache", ""), elapsed


async def run_pairs(
    client: openai.AsyncOpenAI, tag: str, pairs: list[Pair], concurrency: int, overlap: float | None = None
) -> Tally:
    """Ask every pair, first question then second, ``concurrency`` pairs at a time (the second
    ``overlap`` seconds after the first was sent, else once its answer arrived)."""
    tally = Tally()
    gate = asyncio.Semaphore(concurrency)

    async def second(namespace: str, text: str) -> tuple[str, str, float]:
        await asyncio.sleep(overlap or 0.0)
        return await ask(client, namespace, [{"role": "user", "content": text}])

    async def one(i: int, pair: Pair) -> None:
        namespace = f"{tag}-{i}"
        async with gate:
            try:
                if overlap is None:
                    await ask(client, namespace, [{"role": "user", "content": pair.a}])
                    _, cache, ms = await ask(client, namespace, [{"role": "user", "content": pair.b}])
                else:
                    first = ask(client, namespace, [{"role": "user", "content": pair.a}])
                    _, (_, cache, ms) = await asyncio.gather(first, second(namespace, pair.b))
            except openai.APIError:
                tally.errors += 1
                return
        hit = cache.startswith("hit")
        tally.outcomes.append((pair.group, hit, pair.label == 1))
        (tally.hit_ms if hit else tally.miss_ms).append(ms)
        tally.semantic_hits += cache == "hit-semantic"
        if pair.label == 1:
            tally.positives += 1
            tally.tp += hit
        else:
            tally.negatives += 1
            if hit:
                tally.fp += 1
                tally.false_hits.append((pair.a, pair.b))

    await asyncio.gather(*(one(i, pair) for i, pair in enumerate(pairs)))
    return tally


async def run_follow_ups(client: openai.AsyncOpenAI, pairs: list[Pair], count: int) -> tuple[int, int]:
    """Conversations that share only their last turn; returns (asked, hits)."""
    # distinct first questions: two conversations that are the same throughout would rightly hit
    firsts = list(dict.fromkeys(p.a for p in pairs if p.label == 0)) or list(dict.fromkeys(p.a for p in pairs))
    hits = asked = 0
    for i in range(min(count, len(firsts) // 2)):
        follow = FOLLOW_UPS[i % len(FOLLOW_UPS)]
        namespace = f"follow-{i}"
        for k, first in enumerate((firsts[2 * i], firsts[2 * i + 1])):
            answer, _, _ = await ask(client, namespace, [{"role": "user", "content": first}])
            convo = [
                {"role": "user", "content": first},
                {"role": "assistant", "content": answer},
                {"role": "user", "content": follow},
            ]
            _, cache, _ = await ask(client, namespace, convo)
            if k == 1:
                asked += 1
                hits += cache.startswith("hit")
    return asked, hits


def row(name: str, t: Tally, upstream: int) -> str:
    accepted = t.tp + t.fp
    precision = t.tp / accepted if accepted else float("nan")
    p_low, p_high = cp(t.tp, accepted)
    r_low, r_high = cp(t.tp, t.positives)
    recall = t.tp / t.positives if t.positives else float("nan")
    return (
        f"| {name} | {t.positives} / {t.positives + t.negatives} | {accepted} ({t.semantic_hits} semantic) | {t.fp} | "
        f"{precision:.3f} [{p_low:.3f}, {p_high:.3f}] | {recall:.3f} [{r_low:.3f}, {r_high:.3f}] | "
        f"{pct(t.hit_ms, 0.5):.1f} / {pct(t.hit_ms, 0.99):.1f} | "
        f"{pct(t.miss_ms, 0.5):.1f} / {pct(t.miss_ms, 0.99):.1f} "
        f"| {t.errors} | {upstream} |"
    )


def alike(a: str, b: str) -> str:
    """``same text`` (equal up to case, punctuation and contractions), ``same words`` (the same numbers
    and content words: only function words, framing words or order differ) or ``""``."""
    if normalized(a) == normalized(b):
        return "same text"
    x, y = signature(a), signature(b)
    return "same words" if x.numbers == y.numbers and x.words == y.words else ""


def label_check(name: str, pairs: list[Pair], t: Tally) -> str:
    """How many pairs labelled different are the same text (a floor on the file's label noise), and
    how many false hits are such pairs or share all their content words (where labels are disputed)."""
    identical = sum(alike(p.a, p.b) == "same text" for p in pairs)
    kinds = [alike(a, b) for a, b in t.false_hits]
    return (
        f"- labels ({name}): {identical} pairs are the same text up to case, punctuation and contractions, "
        f"{len(label_conflicts(pairs))} of them labelled different; of the {len(kinds)} false hits: "
        f"{kinds.count('same text')} the same text, {kinds.count('same words')} more with the same numbers and "
        "content words"
    )


def by_group(name: str, t: Tally) -> list[str]:
    """Rows of each group's outcomes, then the pooled precision with an interval over whole groups."""
    import numpy as np

    from tokenomy.cache.semantic.tuning.report import estimate

    hit = np.array([h for _, h, _ in t.outcomes], dtype=bool)
    same = np.array([s for _, _, s in t.outcomes], dtype=bool)
    e = estimate(hit, same, (), [g for g, _, _ in t.outcomes])
    out = [
        f"| {name} | {g} | {n_same} | {n} | {false} | "
        f"{(n - false) / n if n else float('nan'):.3f} | {(n - false) / n_same if n_same else float('nan'):.3f} |"
        for g, n, false, n_same in e.by_group
    ]
    low, high = e.precision_95_groups or (float("nan"), float("nan"))
    precision = e.precision if e.precision is not None else float("nan")
    out.append(f"| {name} | all ({len(e.by_group)} groups) | {e.same} | {e.accepted} | {e.false} | "
               f"{precision:.3f} [{low:.3f}, {high:.3f}] over whole groups | {e.recall:.3f} |")  # fmt: skip
    return out


def read(parser: argparse.ArgumentParser, path: Path, args: argparse.Namespace) -> list[Pair]:
    """The labelled pairs of ``path`` (the first ``--limit``); a missing or unreadable file is a usage error."""
    try:
        pairs = load_pairs(
            path, positive_min=args.positive_min, negative_max=args.negative_max, group_column=args.group_column
        )
    except OSError as exc:
        parser.error(f"{path}: {exc.strerror or exc}")
    except (KeyError, ValueError) as exc:
        parser.error(f"{path}: not a pairs file ({exc})")
    if not pairs:
        parser.error(f"{path}: no labelled pairs (a CSV needs the header sentence1,sentence2,label)")
    if args.exclude:
        pairs = unseen(pairs, [p for path in args.exclude for p in load_pairs(path)], args.exclude_sentences)
    return pairs[: args.limit] if args.limit else pairs


def exclusion_arguments(parser: argparse.ArgumentParser) -> None:
    """``--exclude`` and ``--exclude-sentences``, which :func:`read` applies."""
    parser.add_argument("--exclude", type=Path, nargs="+", default=[], help="pairs files whose pairs to leave out")
    parser.add_argument(
        "--exclude-sentences", action="store_true", help="with --exclude: also leave out pairs sharing a question"
    )


def unseen(pairs: list[Pair], seen: list[Pair], by_sentence: bool) -> list[Pair]:
    """``pairs`` less those in ``seen`` (in either order) or, ``by_sentence``, sharing a question with it."""
    key = lambda text: " ".join(text.lower().split())  # noqa: E731
    known = {(key(p.a), key(p.b)) for p in seen} | {(key(p.b), key(p.a)) for p in seen}
    sentences = {key(t) for p in seen for t in (p.a, p.b)}
    return [
        p for p in pairs
        if (key(p.a), key(p.b)) not in known and not (by_sentence and {key(p.a), key(p.b)} & sentences)
    ]  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, nargs="+", required=True, help="CSV (sentence1,sentence2,label) or STS-B")
    parser.add_argument("--limit", type=int, default=0, help="first N pairs of each file (0: all)")
    parser.add_argument("--concurrency", type=int, default=4, help="pairs in flight at once")
    parser.add_argument("--follow-ups", type=int, default=40, help="conversation pairs sharing a follow-up")
    parser.add_argument("--positive-min", type=float, default=4.0, help="STS-B: score counted as the same question")
    parser.add_argument(
        "--negative-max", type=float, default=2.0, help="STS-B: score counted as different (3.99: the middle too)"
    )
    parser.add_argument("--overlap", type=float, default=None, help="send the second question S s after the first")
    parser.add_argument("--upstream-delay", type=float, default=0.0, help="the fake upstream answers after D s")
    parser.add_argument("--no-coalesce", action="store_true", help="cache.semantic.coalesce: false")
    parser.add_argument(
        "--arithmetic", choices=["auto", "int8", "float32"], default="auto", help="cache.semantic.arithmetic"
    )
    parser.add_argument("--tuned", type=Path, help="serve the model `tokenomy cache tune --out DIR` wrote to DIR")
    parser.add_argument("--group-column", help="CSV column naming each pair's group (writer, source): per-group rows")
    exclusion_arguments(parser)
    args = parser.parse_args()
    if args.tuned is not None and not (args.tuned / "verifier.json").is_file():
        parser.error(f"--tuned {args.tuned}: no verifier.json there (run tokenomy cache tune --out {args.tuned})")
    sets = [(path, read(parser, path, args)) for path in args.pairs]  # every file checked before the gateway starts
    rows, notes, groups, checks = [], [], [], []
    async with OpenAIFake(mode="slow" if args.upstream_delay else "ok", delay=args.upstream_delay) as fake:
        await fake.start()
        with tempfile.TemporaryDirectory() as tmp:
            proc, url = await start_gateway(
                config(fake.base_url, not args.no_coalesce, args.arithmetic, args.tuned), Path(tmp)
            )
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
            try:
                await run_pairs(client, "warm-up", [Pair("What is 2 + 2?", "what is 2+2", 1)], 1)  # models load
                for n, (path, pairs) in enumerate(sets):
                    before = len(fake.requests)
                    tally = await run_pairs(client, f"f{n}", pairs, args.concurrency, args.overlap)
                    rows.append(row(path.name, tally, len(fake.requests) - before))
                    groups += by_group(path.name, tally) if args.group_column else []
                    checks.append(label_check(path.name, pairs, tally))
                    notes += [
                        f"- false hit ({path.name}): {a!r} / {b!r}" + (f" [{kind}]" if (kind := alike(a, b)) else "")
                        for a, b in tally.false_hits
                    ]
                asked, hits = await run_follow_ups(client, sets[0][1], args.follow_ups)
            finally:
                await client.close()
                proc.terminate()
                await proc.wait()
    when = "as soon as the first answer arrived" if args.overlap is None else f"{args.overlap} s after the first"
    changed = ", coalesce: false" * args.no_coalesce + f", arithmetic: {args.arithmetic}" * (args.arithmetic != "auto")
    changed += f", the model and verifier tuned in {args.tuned}" * (args.tuned is not None)
    print(f"Gateway at its defaults with `cache.semantic.enabled: true`{changed}; the cross-encoder computes in")
    name = cpu_info()[0]
    vnni = "with" if fast_int8() else "without"
    print(f"{resolve(args.arithmetic)} on this CPU ({name or 'model unknown'}, {vnni} VNNI), the query embedder in")
    print(f"{embedder_arithmetic('auto', False)} (`embedder_arithmetic: auto`, no learned router);")
    print(f"second question asked {when}; upstream answers after {args.upstream_delay} s; each pair in its own")
    print("namespace. n = accepted hits; 95 % Clopper-Pearson intervals.\n")
    print(
        "| pairs | same / all | hits on the second question | false hits | precision [95 % CI] | recall [95 % CI] "
        "| second request ms p50 / p99: hit | miss | errors | upstream calls |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nFollow-ups in another conversation: {hits} hits of {asked} asked.")
    if groups:
        print("\n| pairs | group | same | hits | false hits | precision | recall |\n|---|---|---|---|---|---|---|")
        print("\n".join(groups))
    print("\n" + "\n".join(checks))
    if notes:
        print("\n" + "\n".join(notes))


if __name__ == "__main__":
    asyncio.run(main())
