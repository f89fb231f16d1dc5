"""What a request may cost before it runs (the reservation) and what it did cost (the settlement).

The estimate is an upper bound of every billable part whenever the request bounds its output
(``tokenomy.budgets.parts``): the messages' text counted locally, the tool definitions and
response-format schema as serialized text (plus the provider's tool-use overhead), each image at
the most the provider can charge for one image, audio and files from their size; plus
``max_tokens`` (or ``max_completion_tokens``; ``budgets.default_max_tokens`` when absent) times
``n``; priced at the most expensive deployment of the requested model and of its fallback
models, with no cache discount. A request whose output (or an input part) has no known bound is
marked ``bounded=False``: under a hard budget it is refused unless it states ``max_tokens``. A
deployment with no known price estimates (and costs) $0. The actual cost uses the ledger's own
arithmetic (``tokenomy.ledger.enrich``): the provider's usage, else tokens counted locally; $0
for a cache hit.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenomy.budgets import parts
from tokenomy.config.models import Deployment
from tokenomy.config.policy import router_names
from tokenomy.pipeline.context import CallContext
from tokenomy.pipeline.route import ModelTable
from tokenomy.pricing.prices import PriceBook
from tokenomy.tokens.count import Encode, TokenCounter, count_prompt


@dataclass(frozen=True, slots=True)
class Estimate:
    """The reservation of one request: USD and the prompt's tokens (charged to a TPM limit up front)."""

    usd: float
    prompt_tokens: int
    bounded: bool = True  # False: the output or an input part has no known upper bound
    unbounded_reason: str = ""


class CostModel:
    """Estimates and actual costs, with the ledger's prices."""

    def __init__(self, table: ModelTable, prices: PriceBook, default_max_tokens: int, gguf: str | None) -> None:
        self.table = table
        self.prices = prices
        self.counter = TokenCounter()
        self._default_max = default_max_tokens
        self._gguf = gguf
        self._encoders: dict[str, Encode] = {}
        self._routers = frozenset(router_names(table.config.routers))

    def encoder(self, dep: Deployment) -> Encode:
        """The token counter for a deployment (cached)."""
        found = self._encoders.get(dep.label)
        if found is None:
            found = self._encoders[dep.label] = self.counter.counter_for(dep.model, dep.provider, self._gguf)[0]
        return found

    def stated_limit(self, ctx: CallContext) -> int | None:
        """The output limit the request states (``max_completion_tokens`` or ``max_tokens``), if any."""
        body = ctx.body
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            return None
        return limit

    def completion_allowance(self, ctx: CallContext) -> int:
        """The most completion tokens the request can produce: ``max_tokens`` (or the default) times ``n``
        (``best_of`` for legacy completions, which bills every candidate)."""
        if ctx.endpoint.value == "embeddings":
            return 0
        body = ctx.body
        limit = self.stated_limit(ctx) or self._default_max
        n = max(_count(body.get("n")), _count(body.get("best_of")))
        return limit * n

    def estimate(self, ctx: CallContext, model: str) -> Estimate:
        """The reservation for serving ``ctx`` with ``model`` (404 for an unknown model)."""
        completion = self.completion_allowance(ctx)
        if model in self._routers:  # a router may pick any model: bound by the dearest of all
            deployments = [dep for logical_model in self.table.config.models for dep in logical_model.deployments]
        else:
            logical = self.table.resolve(model)
            deployments = [*logical.deployments]
            for name in logical.fallbacks:  # a failed call may be served by a fallback model
                deployments.extend(self.table.resolve(name).deployments)
        encode = self.encoder(deployments[0])
        prompt = count_prompt(encode, ctx.endpoint.value, ctx.body)
        extra = parts.billable_parts(ctx.body, encode) if ctx.endpoint.value == "chat" else parts.NO_PARTS
        usd = 0.0
        most = prompt
        for dep in deployments:
            tokens = prompt + extra.prompt_tokens(dep)
            most = max(most, tokens)
            price = self.prices.price(dep)
            usd = max(
                usd, price.cost(tokens, completion) + price.cost(extra.premium_tokens, 0) * parts.AUDIO_PRICE_FACTOR
            )
        bounded, reason = extra.bounded, extra.unbounded_reason
        local = all(dep.provider == "local" for dep in deployments)  # local generation caps its own output
        if bounded and ctx.endpoint.value != "embeddings" and self.stated_limit(ctx) is None and not local:
            bounded, reason = False, "it does not set max_tokens"
        return Estimate(usd, most, bounded, reason)

    def actual(self, ctx: CallContext) -> tuple[float, int]:
        """``(USD, tokens)`` the finished request cost, as the ledger will record it."""
        dep = ctx.deployment
        usage = ctx.usage
        prompt = completion = cached = 0
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            prompt, completion, cached = usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
        elif dep is not None and (ctx.streamed_text or ctx.status < 400):
            encode = self.encoder(dep)
            prompt = count_prompt(encode, ctx.endpoint.value, ctx.body)
            completion = encode("".join(ctx.streamed_text or ()))
        priced = dep or ctx.baseline_deployment
        if priced is None:
            return 0.0, prompt + completion
        if ctx.cache.startswith("hit") or ctx.cache == "coalesced":
            return ctx.extra_cost_usd, 0
        return self.prices.price(priced).cost(prompt, completion, cached) + ctx.extra_cost_usd, prompt + completion


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 1 else 1
