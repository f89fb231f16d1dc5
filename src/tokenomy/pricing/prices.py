"""Prices per token for each deployment: config overrides, the genai-prices database, or a
self-hosted cost per hour divided by measured throughput.

Lookups are resolved once per deployment and cached; pricing a request is then arithmetic.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokenomy.config.models import Deployment, Pricing
from tokenomy.pricing.throughput import ThroughputMeter

log = logging.getLogger("tokenomy.pricing")

_PROVIDER_IDS = {"openai": None, "anthropic": "anthropic"}  # openai-compatible: search every provider


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """USD per token; ``cached_input`` applies to cache reads, ``cache_write`` to cache writes."""

    input: float
    output: float
    cached_input: float
    source: str  # config | genai-prices | unknown
    cache_write: float | None = None  # None: the input price

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, written: int = 0) -> float:
        """The cost of a call with these token counts (cache reads and writes are part of the prompt)."""
        cached = min(cached_tokens, prompt_tokens)
        written = min(written, prompt_tokens - cached)
        write = self.input if self.cache_write is None else self.cache_write
        fresh = prompt_tokens - cached - written
        return fresh * self.input + cached * self.cached_input + written * write + completion_tokens * self.output


UNPRICED = TokenPrice(0.0, 0.0, 0.0, "unknown")


def _per_token(value: Any) -> float | None:
    """A genai-prices per-MTok figure (Decimal, or tiered with a base) as USD per token."""
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return float(value) / 1e6
    base = getattr(value, "base", None)  # tiered prices: the base tier (documented approximation)
    return float(base) / 1e6 if base is not None else None


def lookup(model: str, provider: str) -> TokenPrice | None:
    """The genai-prices entry for a model, or ``None`` when the database does not know it."""
    from genai_prices import Usage, calc_price

    calc = None
    for provider_id in dict.fromkeys((_PROVIDER_IDS.get(provider), provider)):
        try:
            calc = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model, provider_id=provider_id)
            break
        except LookupError:
            continue
    if calc is None:
        return None
    price = calc.model_price
    inp, out = _per_token(price.input_mtok), _per_token(price.output_mtok)
    if inp is None:
        return None
    cached = _per_token(price.cache_read_mtok)
    written = _per_token(getattr(price, "cache_write_mtok", None))
    # embeddings have no output price
    return TokenPrice(inp, out or 0.0, inp if cached is None else cached, "genai-prices", written)


def _from_config(pricing: Pricing) -> TokenPrice:
    assert pricing.input_per_mtok is not None and pricing.output_per_mtok is not None
    cached = pricing.cached_input_per_mtok
    written = pricing.cache_write_per_mtok
    return TokenPrice(
        pricing.input_per_mtok / 1e6,
        pricing.output_per_mtok / 1e6,
        (pricing.input_per_mtok if cached is None else cached) / 1e6,
        "config",
        None if written is None else written / 1e6,
    )


class PriceBook:
    """Per-deployment prices, resolved once; self-hosted ones follow measured throughput."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prices: dict[str, TokenPrice] = {}
        self._meters: dict[str, ThroughputMeter] = {}

    def price(self, deployment: Deployment) -> TokenPrice:
        """The deployment's current per-token price."""
        pricing = deployment.pricing
        if pricing is not None and pricing.cost_per_hour is not None:
            return self._self_hosted(deployment.label, pricing)
        label = deployment.label
        found = self._prices.get(label)
        if found is None:
            with self._lock:
                if pricing is not None and pricing.input_per_mtok is not None:
                    found = _from_config(pricing)
                else:
                    name = pricing.price_model if pricing is not None and pricing.price_model else deployment.model
                    found = lookup(name, deployment.provider) or UNPRICED
                    if found is UNPRICED and deployment.provider != "local":
                        log.warning("no price known for %s; its requests are recorded at $0 (set pricing)", label)
                self._prices[label] = found
        return found

    def observe(self, deployment: Deployment, tokens: int, start: float, end: float) -> None:
        """Feed a finished request to the deployment's throughput meter (self-hosted pricing)."""
        pricing = deployment.pricing
        if pricing is None or pricing.cost_per_hour is None or pricing.throughput_tokens_per_s is not None:
            return
        meter = self._meters.get(deployment.label)
        if meter is None:
            meter = self._meters.setdefault(deployment.label, ThroughputMeter())
        meter.observe(tokens, start, end)

    def _self_hosted(self, label: str, pricing: Pricing) -> TokenPrice:
        assert pricing.cost_per_hour is not None
        rate = pricing.throughput_tokens_per_s
        if rate is None:
            meter = self._meters.get(label)
            rate = meter.tokens_per_s() if meter is not None else None
        if not rate:
            return TokenPrice(0.0, 0.0, 0.0, "self-hosted")  # nothing measured yet
        per_token = pricing.cost_per_hour / 3600.0 / rate
        return TokenPrice(per_token, per_token, per_token, "self-hosted")
