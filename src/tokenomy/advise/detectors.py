"""The advisor's detectors: each reads the ledger and proposes actions with the saving they would have made.

Savings are computed over the records read (``window_saving_usd``); the caller scales them to a month.
Every figure is re-priced from the recorded token counts with the deployment's own price.
"""

from __future__ import annotations

import os.path
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from tokenomy.advise.data import SAMPLE, LedgerReader, Usage
from tokenomy.advise.prices import Prices
from tokenomy.config.policy import Candidate, TaskPolicy
from tokenomy.reports.render_table import short_money

MIN_REQUESTS = 20
"""Fewer successful requests than this in a task say too little about its traffic pattern."""

PROMPT_CACHE_MIN_TOKENS = 1024
"""Providers cache prompt prefixes from this length on (OpenAI's minimum; Anthropic's is 1,024-2,048)."""

CACHED_INPUT_SHARE = 0.5
"""Price of a cached prompt token relative to a fresh one when the price database gives none."""

BATCH_DISCOUNT = 0.5
"""The OpenAI and Anthropic batch APIs bill half the interactive price."""

BURST_COVER = 0.9
BURST_SPAN = 0.1
"""A task is bursty when 90% of its requests fall in at most 10% of the ledger's span."""

SAMPLE_ASSUMPTION = (
    "measured on the most recent requests of the window and scaled to its spend: the rest of the window "
    "behaves like them (repeats that span the sample's edge are not counted, so a cache saving leans low)"
)

HOURLY_SPAN_S = 100 * 3600
"""Windows at least this long find bursts in whole hours from the hourly rollup (shorter: raw records)."""

RUNAWAY_TAIL = 4.0
"""Outputs count as runaway when the longest are this many times the median (the cap is set at p95)."""


@dataclass(frozen=True, slots=True)
class Found:
    """A detector's proposal before it is scaled to a month and ranked."""

    kind: str
    title: str
    task: str
    model: str
    saving_usd: float
    confidence: str
    evidence: tuple[str, ...]
    action: str
    assumptions: tuple[str, ...] = ()


def duplicates(reader: LedgerReader, usage: list[Usage]) -> Iterator[Found]:
    """Identical prompts paid for again → cache the task (at temperature > 0 too, if that is what skipped it)."""
    for d in reader.duplicates():
        repeats = d.requests - d.prompts
        scale = reader.scale(d.task, d.model, usage)
        if d.repeat_cost_usd <= 0 or repeats <= 0 or scale <= 0:
            continue
        if d.bypassed >= max(d.missed, d.uncached):
            why = f"the cache skipped {d.bypassed} of them (temperature > 0 or a rule turns it off)"
            action = f'cache:\n  rules:\n    - {{task: "{d.task}", enabled: true, nondeterministic: true}}'
            assumptions: tuple[str, ...] = (
                "a stored answer is acceptable for a repeated prompt of this task (at temperature > 0 each call "
                "samples a new answer; check the task does not rely on that)",
            )
        elif d.missed >= d.uncached:
            why = f"{d.missed} of them were looked up and missed (entries expired or were evicted)"
            action = f'cache:\n  rules:\n    - {{task: "{d.task}", ttl_s: 86400}}'
            assumptions = ("the answers stay valid for a day",)
        else:
            why = "no cache stage saw them"
            action = "cache:\n  exact: {enabled: true}"
            assumptions = ("a stored answer is acceptable for a repeated prompt",)
        yield Found(
            kind="cache",
            title=f"Cache repeated prompts of task {d.task!r} on {d.model}",
            task=d.task,
            model=d.model,
            saving_usd=d.repeat_cost_usd * scale,
            confidence="high" if repeats >= MIN_REQUESTS else "medium",
            evidence=(
                f"{d.prompts:,} distinct prompts were sent {d.requests:,} times: {repeats:,} repeats paid in full, "
                f"costing {short_money(d.repeat_cost_usd)}",
                why,
                f"replayed against this window: with the cache on, {repeats:,} requests would have hit"
                if scale == 1.0
                else f"replayed against the {SAMPLE:,} most recent requests: with the cache on, {repeats:,} would "
                f"have hit; scaled {scale:,.3g}x to the task's spend in the window: "
                f"{short_money(d.repeat_cost_usd * scale)}",
            ),
            action=action,
            assumptions=assumptions + (() if scale == 1.0 else (SAMPLE_ASSUMPTION,)),
        )


def prompt_prefixes(reader: LedgerReader, usage: list[Usage], prices: Prices) -> Iterator[Found]:
    """A long prefix shared by a task's prompts → provider prompt caching (or compression)."""
    for u in usage:
        if u.requests < 2 or u.prompt_tokens / u.requests < PROMPT_CACHE_MIN_TOKENS:
            continue
        price = prices.for_deployment(u.deployment, u.model)
        sample = reader.prompts(u.task, u.model)
        if price is None or len(sample) < 2:
            continue
        texts = [text for text, _ in sample]
        prefix = os.path.commonprefix(texts)  # noqa: RUF071 (a character prefix is what we want)
        # tokens of the shared prefix, pro rata by characters
        shares = [len(prefix) / len(text) if text else 0.0 for text in texts]
        share = float(np.mean(shares))
        prefix_tokens = share * u.prompt_tokens / u.requests
        if prefix_tokens < PROMPT_CACHE_MIN_TOKENS:
            continue
        cached_price = price.cached_input if 0 < price.cached_input < price.input else price.input * CACHED_INPUT_SHARE
        already = u.cached_tokens / u.requests
        per_request = max(0.0, prefix_tokens - already) * (price.input - cached_price)
        saving = per_request * (u.requests - 1)  # the first request writes the provider's cache
        if saving <= 0:
            continue
        if u.provider == "anthropic":
            action = (
                f'mark the shared prefix of task "{u.task}" with cache_control: {{"type": "ephemeral"}} '
                "(the last block of the system prompt)"
            )
        else:
            action = (
                f'keep the {prefix_tokens:,.0f} shared tokens of task "{u.task}" at the start of every prompt and '
                "the varying part last: the provider then bills them as cached input"
            )
        yield Found(
            kind="prompt-caching",
            title=f"Use prompt caching for the long shared prefix of task {u.task!r}",
            task=u.task,
            model=u.model,
            saving_usd=saving,
            confidence="medium",
            evidence=(
                f"{u.requests:,} requests averaging {u.prompt_tokens / u.requests:,.0f} prompt tokens; the most "
                f"recent {len(sample)} stored prompts share their first {share:.0%} (~{prefix_tokens:,.0f} tokens)",
                f"{already:,.0f} tokens per request were billed as cached",
                f"cached input costs {cached_price / price.input:.0%} of fresh input on {u.deployment or u.model}",
            ),
            action=action,
            assumptions=(
                "requests of the task arrive often enough for the provider's cache to stay warm (minutes between them)",
                "the prefix measured on the most recent stored prompts holds for the whole window",
            ),
        )


def _candidate_cost(candidate: Candidate, u: Usage) -> float:
    if candidate.cost_per_1k_requests is not None:
        return candidate.cost_per_1k_requests * u.requests / 1000.0
    return (
        (candidate.input_per_mtok or 0.0) * u.prompt_tokens + (candidate.output_per_mtok or 0.0) * u.completion_tokens
    ) / 1e6


def cheaper_models(
    usage: list[Usage], prices: Prices, evidence: Mapping[str, tuple[TaskPolicy, str]]
) -> Iterator[Found]:
    """A cheaper model known to meet the task's bar → switch; none known → evaluate the cheaper candidates."""
    by_task: dict[tuple[str, str], list[Usage]] = {}
    for u in usage:
        by_task.setdefault((u.task, u.model), []).append(u)
    known = prices.models()
    for (task, model), rows in by_task.items():
        total = Usage(
            task,
            model,
            None,
            None,
            sum(r.requests for r in rows),
            0,
            sum(r.prompt_tokens for r in rows),
            sum(r.completion_tokens for r in rows),
            0,
            sum(r.cost_usd for r in rows),
            0.0,
            0.0,
        )
        if total.cost_usd <= 0:
            continue
        found = evidence.get(task)
        if found is not None:
            policy, source = found
            able = [c for c in policy.candidates if c.quality >= policy.min_quality and c.model != model]
            if not able:
                continue
            best = min(able, key=lambda c: _candidate_cost(c, total))
            saving = total.cost_usd - _candidate_cost(best, total)
            if saving <= 0:
                continue
            current = next((c for c in policy.candidates if c.model == model), None)
            quality = f"{current.quality:.2f}" if current is not None else "not measured"
            yield Found(
                kind="model",
                title=f"Serve task {task!r} with {best.model} instead of {model}",
                task=task,
                model=model,
                saving_usd=saving,
                confidence="high",
                evidence=(
                    f"{source}: {best.model} scores {best.quality:.2f} on task {task!r}, meeting its bar "
                    f"{policy.min_quality:.2f} ({model}: {quality})",
                    f"{total.requests:,} requests cost {short_money(total.cost_usd)} on {model}; the same tokens on "
                    f"{best.model} cost {short_money(total.cost_usd - saving)}",
                ),
                action=(
                    f"send task {task!r} to model {best.model!r} (in the client, or with a policy router whose "
                    f"task {task!r} lists the candidates of {source})"
                ),
                assumptions=("the evaluation's prompts are representative of this task's traffic",),
            )
            continue
        cheaper = sorted(
            (price.cost(total.prompt_tokens, total.completion_tokens), name)
            for name, price in known.items()
            if name != model
        )
        cheaper = [(cost, name) for cost, name in cheaper if cost < 0.5 * total.cost_usd][:3]
        if not cheaper or total.requests < MIN_REQUESTS:
            continue
        cost, name = cheaper[0]
        names = ", ".join(n for _, n in cheaper)
        yield Found(
            kind="model",
            title=f"Evaluate cheaper models for task {task!r} (now {model})",
            task=task,
            model=model,
            saving_usd=total.cost_usd - cost,
            confidence="low",
            evidence=(
                f"{total.requests:,} requests cost {short_money(total.cost_usd)} on {model}; the same tokens cost "
                f"{short_money(cost)} on {name}",
                "no evaluation result for this task says whether a cheaper model meets its bar",
            ),
            action=(
                f"measure {names} on a sample of task {task!r} (tokenomy router train/evaluate, see the routing "
                "guide), then pass the result to tokenomy advise --evidence"
            ),
            assumptions=("an upper bound: it holds only if the cheaper model is good enough for every request",),
        )


BURST_BUCKETS = 400
"""The ledger's span is cut into this many buckets to find bursts (counted in the database)."""


def _cover_buckets(counts: dict[int, int], cover: float) -> int:
    """The fewest consecutive buckets holding ``cover`` of the requests."""
    keys = np.array(sorted(counts))
    cum = np.concatenate([[0], np.cumsum([counts[k] for k in keys])])
    need = cover * cum[-1]
    best = len(keys) and int(keys[-1] - keys[0] + 1)
    j = 0
    for i in range(len(keys)):  # two pointers over the non-empty buckets
        while j < len(keys) and cum[j + 1] - cum[i] < need:
            j += 1
        if j == len(keys):
            break
        best = min(best, int(keys[j] - keys[i] + 1))
    return best


def batchable(reader: LedgerReader, usage: list[Usage], first_ts: float | None, span_s: float) -> Iterator[Found]:
    """Bursts of one task, none streamed → the provider's batch API at half price."""
    if first_ts is None or span_s <= 0:
        return
    hours = 0  # a short window counts raw records in fine buckets; a long one whole hours from the rollup
    if span_s >= HOURLY_SPAN_S:
        hours = int(np.ceil(span_s / BURST_BUCKETS / 3600))
    bucket_s = hours * 3600.0 if hours else span_s / BURST_BUCKETS
    arrivals: dict[tuple[str, str], dict[int, int]] | None = None
    for u in usage:
        if u.requests < MIN_REQUESTS or u.streamed or u.cost_usd <= 0 or u.provider not in ("openai", "anthropic"):
            continue
        if arrivals is None:
            if hours:
                arrivals = reader.hourly_arrivals(int(first_ts // 3600), hours)
            else:
                arrivals = reader.arrivals(first_ts, bucket_s)
        counts = arrivals.get((u.task, u.model))
        if not counts:
            continue
        width = _cover_buckets(counts, BURST_COVER) * bucket_s
        if width > BURST_SPAN * span_s:
            continue
        saving = BATCH_DISCOUNT * u.cost_usd
        yield Found(
            kind="batch",
            title=f"Send task {u.task!r} through the batch API",
            task=u.task,
            model=u.model,
            saving_usd=saving,
            confidence="medium",
            evidence=(
                f"{u.requests:,} requests, none streamed; {BURST_COVER:.0%} of them arrived within {width:,.3g} s, "
                f"{width / span_s:.1%} of the {span_s:,.0f} s the ledger covers",
                f"they cost {short_money(u.cost_usd)}; the batch API bills {1 - BATCH_DISCOUNT:.0%} of that",
            ),
            action=(
                f"submit the requests of task {u.task!r} as one {u.provider} batch job (results within 24 hours) "
                "instead of calling the interactive API"
            ),
            assumptions=("no caller of this task waits for the answer interactively",),
        )


def _percentile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``numpy.percentile(..., method="linear")`` of ``values`` repeated ``counts`` times (values sorted)."""
    cum = np.cumsum(counts)
    pos = q / 100 * (float(cum[-1]) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    low = float(values[int(np.searchsorted(cum, lo, side="right"))])
    high = float(values[int(np.searchsorted(cum, hi, side="right"))])
    return low + (high - low) * (pos - lo)


def runaway_outputs(reader: LedgerReader, usage: list[Usage], prices: Prices) -> Iterator[Found]:
    """A long tail of very long answers → an output cap at the task's p95 (lengths from the reader's sample)."""
    lengths: dict[tuple[str, str], dict[int, int]] | None = None
    for u in usage:
        if u.requests < MIN_REQUESTS or u.completion_tokens == 0:
            continue
        price = prices.for_deployment(u.deployment, u.model)
        if price is None or price.output <= 0:
            continue
        if lengths is None:
            lengths = reader.output_lengths()
        found = lengths.get((u.task, u.model))
        if not found:
            continue
        values = np.array(sorted(found), dtype=float)
        counts = np.array([found[int(v)] for v in values])
        median, cap = _percentile(values, counts, 50), float(np.ceil(_percentile(values, counts, 95)))
        longest = float(values[-1])
        if median <= 0 or longest < RUNAWAY_TAIL * median:
            continue
        over = values > cap
        excess = float(((values[over] - cap) * counts[over]).sum())
        scale = reader.scale(u.task, u.model, usage)
        saving = excess * price.output * scale
        if saving <= 0:
            continue
        cut = int(counts[over].sum())
        yield Found(
            kind="output-cap",
            title=f"Cap the output of task {u.task!r} at {cap:,.0f} tokens",
            task=u.task,
            model=u.model,
            saving_usd=saving,
            confidence="low",
            evidence=(
                f"median answer {median:,.0f} tokens, p95 {cap:,.0f}, longest {longest:,.0f}",
                f"{cut} answers ran past p95; their extra {excess:,.0f} tokens cost {short_money(saving / scale)}"
                + (
                    ""
                    if scale == 1.0
                    else f" in the {SAMPLE:,} most recent requests ({scale:,.3g}x that in the window)"
                ),
            ),
            action=f'send max_tokens: {cap:.0f} with task "{u.task}" requests',
            assumptions=(
                "the longest answers are runaway (repetition, rambling), not answers that need the room",
                *(() if scale == 1.0 else (SAMPLE_ASSUMPTION,)),
            ),
        )
