"""Cost, baseline and savings by lever for one request.

The baseline is what the request would have cost with no lever applied: the deployment the
client's request would have used, the original (uncompressed) prompt, and no cache. The saving
``baseline - cost`` is split by lever:

- ``cache``: a cache hit made no call; the whole saving is the cache's. For embeddings, inputs
  answered from the cache save their tokens at the baseline's input price.
- ``compression``: the removed prompt tokens at the baseline deployment's input price, and, when
  the gateway placed the prompt-cache breakpoints, the cache reads' discount less the writes'
  premium (the client's request, as sent, would have read and written no cache).
- ``routing``: the same call priced on the baseline deployment minus on the one that served it.
- ``batching``: a provider's batch discount (``discount``, a share of the list price), and any
  saving a stage measured itself.

A failed request with no usage costs nothing and saved nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenomy.ledger.record import LEVERS
from tokenomy.pricing.prices import TokenPrice


@dataclass(frozen=True, slots=True)
class CallCosts:
    """The priced outcome of one request."""

    cost: float
    baseline: float
    saved: dict[str, float] = field(default_factory=dict)


def attribute(
    *,
    served: TokenPrice,
    baseline: TokenPrice,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int,
    original_prompt_tokens: int | None,
    cache_hit: bool,
    extra_cost: float = 0.0,
    reported: dict[str, float] | None = None,
    cached_item_tokens: int = 0,
    routing_overhead: bool = False,
    cache_write_tokens: int = 0,
    gateway_cache_breakpoints: bool = False,
    discount: float = 0.0,
) -> CallCosts:
    """Price a request and attribute its saving to levers (every lever present, zero if unused)."""
    saved = dict.fromkeys(LEVERS, 0.0)
    original = max(prompt_tokens, original_prompt_tokens or prompt_tokens)
    written = cache_write_tokens
    if gateway_cache_breakpoints and not cache_hit:
        # the request as sent had no breakpoints: its baseline reads and writes no prompt cache
        baseline_cost = baseline.cost(original, completion_tokens)
        cost = served.cost(prompt_tokens, completion_tokens, cached_tokens, written) + extra_cost
        with_cache = baseline.cost(prompt_tokens, completion_tokens, cached_tokens, written)
        saved["compression"] = baseline_cost - with_cache
        saved["routing"] = with_cache - served.cost(prompt_tokens, completion_tokens, cached_tokens, written)
        if routing_overhead:
            saved["routing"] -= extra_cost
        return CallCosts(cost, baseline_cost, saved)
    baseline_cost = baseline.cost(original, completion_tokens, cached_tokens, written)
    if cache_hit:
        cost = extra_cost
        saved["cache"] = baseline_cost - cost
        return CallCosts(cost, baseline_cost, saved)
    cost = served.cost(prompt_tokens, completion_tokens, cached_tokens, written) + extra_cost
    if discount:  # a provider batch: billed at the list price less the discount
        saved["batching"] = served.cost(prompt_tokens, completion_tokens, cached_tokens, written) * discount
        cost -= saved["batching"]
    saved["compression"] = (original - prompt_tokens) * baseline.input
    saved["routing"] = baseline.cost(prompt_tokens, completion_tokens, cached_tokens, written) - served.cost(
        prompt_tokens, completion_tokens, cached_tokens, written
    )
    if cached_item_tokens:  # embeddings inputs answered from the cache, the rest sent upstream
        item_saving = cached_item_tokens * baseline.input
        saved["cache"] += item_saving
        baseline_cost += item_saving
    if routing_overhead:  # e.g. a cascade's rejected attempts: the routing lever paid for them
        saved["routing"] -= extra_cost
    for lever, amount in (reported or {}).items():
        if lever in saved and lever not in ("cache", "compression", "routing"):
            saved[lever] += amount
            baseline_cost += amount  # a stage-measured saving is money the baseline would have spent
    return CallCosts(cost, baseline_cost, saved)
