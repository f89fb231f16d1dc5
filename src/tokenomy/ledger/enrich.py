"""Turning a finished request's call context into a ledger record.

Runs on the ledger writer's thread, never on the request path: token counting (when the
provider reported no usage), language detection, prompt hashing and pricing all happen here.
"""

from __future__ import annotations

import hashlib
import logging
import time

import orjson

from tokenomy.config.models import GatewayConfig
from tokenomy.ledger.language import detect, last_user_text
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.savings import attribute
from tokenomy.pipeline.context import CallContext
from tokenomy.pricing.prices import UNPRICED, PriceBook
from tokenomy.tokens.count import TokenCounter, count_prompt

log = logging.getLogger("tokenomy.ledger")
_PROMPT_KEYS = {"chat": "messages", "completions": "prompt", "embeddings": "input", "images": "prompt",
                "speech": "input", "moderations": "input", "rerank": "query"}  # fmt: skip


class Enricher:
    """Build :class:`LedgerRecord` objects from finished call contexts."""

    def __init__(self, config: GatewayConfig) -> None:
        self.prices = PriceBook(config.local.cost_per_hour)
        self.counter = TokenCounter()
        self._store_prompts = config.ledger.store_prompts
        self._gguf = config.local.generation.model_path

    def record(self, ctx: CallContext) -> LedgerRecord:
        """The ledger record of a finished request."""
        body = ctx.body
        endpoint = ctx.endpoint.value
        dep = ctx.deployment
        finished = ctx.finished if ctx.finished is not None else time.perf_counter()
        latency_ms = (finished - ctx.started) * 1000.0
        usage = ctx.usage
        prompt_tokens = completion_tokens = cached = reasoning = written = 0
        source = "none"
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
            cached, reasoning, written = usage.cached_tokens, usage.reasoning_tokens, usage.cache_write_tokens
            source = "provider"
        elif dep is not None and (ctx.streamed_text or ctx.status < 400):
            # the provider said nothing (e.g. a stream without usage): count locally
            encode, source = self.counter.counter_for(dep.model, dep.provider, self._gguf)
            prompt_tokens = count_prompt(encode, endpoint, body)
            completion_tokens = encode("".join(ctx.streamed_text or ()))
        prompt_value = body.get(_PROMPT_KEYS.get(endpoint, "input"))
        prompt_bytes = orjson.dumps(prompt_value) if prompt_value is not None else b""
        record = LedgerRecord(
            request_id=ctx.request_id,
            ts=ctx.arrived,
            api_key=ctx.api_key_name,
            tenant=ctx.tenant,
            end_user=_end_user(body),
            task=ctx.task,
            endpoint=endpoint,
            wire=ctx.wire,
            requested_model=ctx.model,
            served_model=ctx.served_model if ctx.logical_model is not None else None,
            deployment=dep.label if dep is not None else None,
            provider=dep.provider if dep is not None else None,
            stream=ctx.stream,
            status=ctx.status,
            error_type=ctx.error_type,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            token_source=source,
            language=detect(last_user_text(endpoint, body)),
            latency_ms=latency_ms,
            ttft_ms=None if ctx.ttft is None else ctx.ttft * 1000.0,
            cache=ctx.cache,
            route=ctx.route,
            prompt_hash=hashlib.sha256(prompt_bytes).hexdigest()[:32] if prompt_bytes else None,
            prompt=prompt_bytes.decode() if self._store_prompts and prompt_bytes else None,
            client_request_id=ctx.client_request_id,
            response=_answer_text(ctx) if self._store_prompts and ctx.status < 400 else None,
            shadow_of=ctx.shadow_of,
            finish_reason=ctx.finish_reason if ctx.status < 400 else None,
        )
        if dep is not None or ctx.baseline_deployment is not None:
            self._price(ctx, record, written)
        return record

    def _price(self, ctx: CallContext, record: LedgerRecord, written: int = 0) -> None:
        dep = ctx.deployment or ctx.baseline_deployment  # a cache hit called nobody: price as the baseline
        assert dep is not None
        tokens = record.prompt_tokens + record.completion_tokens
        if ctx.deployment is not None:
            self.prices.observe(dep, tokens, record.ts, record.ts + record.latency_ms / 1000.0)
        served = self.prices.price(dep)
        record.price_source = served.source if served is not UNPRICED else "unknown"
        base_dep = ctx.baseline_deployment or dep
        placed = ctx.prompt_cache is not None and getattr(ctx.prompt_cache, "placed", 0) > 0
        original = ctx.original_prompt_tokens
        if original is None and ctx.removed_prompt_tokens:  # the optimize stage's count of what it removed
            original = record.prompt_tokens + ctx.removed_prompt_tokens
        if (  # the common case, no lever applied: baseline = cost, nothing saved (the fields default to 0)
            base_dep is dep
            and ctx.cache in ("none", "miss", "bypass")
            and original is None
            and not placed
            and not ctx.extra_cost_usd
            and not ctx.savings
            and not ctx.cached_item_tokens
            and "batch_discount" not in ctx.decisions
        ):
            cost = served.cost(record.prompt_tokens, record.completion_tokens, record.cached_tokens, written)
            record.cost_usd = record.baseline_cost_usd = cost
            return
        baseline = served if base_dep is dep else self.prices.price(base_dep)
        costs = attribute(
            served=served,
            baseline=baseline,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            cached_tokens=record.cached_tokens,
            original_prompt_tokens=original,
            cache_hit=ctx.cache.startswith("hit") or ctx.cache == "coalesced",
            extra_cost=ctx.extra_cost_usd,
            reported=ctx.savings,
            cached_item_tokens=ctx.cached_item_tokens,
            routing_overhead=(ctx.route or "").startswith("cascade:"),
            cache_write_tokens=written,
            gateway_cache_breakpoints=placed,
            discount=float(ctx.decisions.get("batch_discount", 0.0)),  # provider batch APIs (tokenomy.batches)
        )
        record.cost_usd = costs.cost
        record.baseline_cost_usd = costs.baseline
        for lever, amount in costs.saved.items():
            setattr(record, f"saved_{lever}_usd", amount)


def _answer_text(ctx: CallContext) -> str | None:
    """The answer's text: what was streamed, else the first choice of the completion body."""
    if ctx.streamed_text is not None:
        return "".join(ctx.streamed_text)
    for choice in (ctx.response_body or {}).get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            return text if isinstance(text, str) else None
    return None


def build_record(enricher: Enricher, ctx: CallContext) -> LedgerRecord:
    """``enricher.record(ctx)``, or a record without costs if enrichment fails (never lose a request)."""
    try:
        return enricher.record(ctx)
    except Exception:
        log.exception("ledger: enriching %s failed; recording it without costs", ctx.request_id)
        record = LedgerRecord(request_id=ctx.request_id, ts=ctx.arrived, requested_model=ctx.model)
        record.status, record.error_type, record.task = ctx.status, ctx.error_type, ctx.task
        return record


def _end_user(body: dict[str, object]) -> str | None:
    """The end user: OpenAI's ``user`` field, or Anthropic's ``metadata.user_id``."""
    user = body.get("user")
    if user is None:
        metadata = body.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
    return str(user)[:256] if user is not None else None
