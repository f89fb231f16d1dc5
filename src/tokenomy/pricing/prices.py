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

# Provider kind -> genai-prices provider id; ``None``: search every provider (openai-compatible).
# Presets of hosted services share their id with genai-prices (groq, mistral...).
_PROVIDER_IDS = {"openai": None, "anthropic": "anthropic", "azure": "azure", "gemini": "google", "bedrock": "aws"}
_SELF_HOSTED = frozenset({"ollama", "vllm", "sglang", "tgi", "lmstudio"})  # priced by config or cost_per_hour


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """USD per token; ``cached_input`` applies to cache reads, ``cache_write`` to cache writes."""

    input: float
    output: float
    cached_input: float
    source: str  # config | genai-prices | self-hosted | default | unknown
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
    if provider in _SELF_HOSTED:
        return None
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


DEFAULT_LOCAL_COST_PER_HOUR = 0.10
"""USD per hour of machine time assumed for the embedded models when nothing else is configured:
the price class of a small general-purpose cloud VM (2 vCPUs, 8 GiB). An assumption, not a
measurement; ``local.cost_per_hour`` (or a deployment's ``pricing``) overrides it."""

PRICE_KINDS = {"config": "configured", "self-hosted": "configured", "genai-prices": "database", "default": "default"}
"""How each ``price_source`` is described to users: configured, from the price database, defaulted, or unknown."""


def price_kind(source: str) -> str:
    """``configured`` | ``database`` | ``default`` | ``unknown`` for a record's ``price_source``."""
    return PRICE_KINDS.get(source, "unknown")


class PriceBook:
    """Per-deployment prices, resolved once; self-hosted ones follow measured throughput.

    An embedded (``provider: local``) deployment with no pricing of its own is priced as
    self-hosted at ``local_cost_per_hour`` (source ``default``), so the demo shows real costs.
    """

    def __init__(self, local_cost_per_hour: float | None = DEFAULT_LOCAL_COST_PER_HOUR) -> None:
        self._lock = threading.Lock()
        self._prices: dict[str, TokenPrice] = {}
        self._meters: dict[str, ThroughputMeter] = {}
        self._local_default = (
            Pricing(cost_per_hour=local_cost_per_hour) if local_cost_per_hour else None  # 0 or None: unpriced
        )
        self._announced: set[str] = set()

    def _hourly(self, deployment: Deployment) -> tuple[Pricing, str] | None:
        """The cost-per-hour pricing that applies, and its source, if any."""
        pricing = deployment.pricing
        if pricing is not None and pricing.cost_per_hour is not None:
            return pricing, "self-hosted"
        if deployment.provider == "local" and pricing is None and self._local_default is not None:
            if deployment.label not in self._announced:
                self._announced.add(deployment.label)
                log.info(
                    "local deployment %s is priced at the default $%.2f per hour of machine time, divided by "
                    "its measured tokens/s (set local.cost_per_hour or the deployment's pricing to change it)",
                    deployment.label,
                    self._local_default.cost_per_hour,
                )
            return self._local_default, "default"
        return None

    def price(self, deployment: Deployment) -> TokenPrice:
        """The deployment's current per-token price."""
        pricing = deployment.pricing
        hourly = self._hourly(deployment)
        if hourly is not None:
            return self._self_hosted(deployment.label, *hourly)
        label = deployment.label
        found = self._prices.get(label)
        if found is None:
            with self._lock:
                if pricing is not None and pricing.input_per_mtok is not None:
                    found = _from_config(pricing)
                else:
                    name = pricing.price_model if pricing is not None and pricing.price_model else deployment.model
                    found = lookup(name, deployment.provider) or UNPRICED
                    if found is UNPRICED:
                        log.warning("no price known for %s; its requests are recorded at $0 (set pricing)", label)
                self._prices[label] = found
        return found

    def observe(self, deployment: Deployment, tokens: int, start: float, end: float) -> None:
        """Feed a finished request to the deployment's throughput meter (self-hosted pricing)."""
        hourly = self._hourly(deployment)
        if hourly is None or hourly[0].throughput_tokens_per_s is not None:
            return
        meter = self._meters.get(deployment.label)
        if meter is None:
            meter = self._meters.setdefault(deployment.label, ThroughputMeter())
        meter.observe(tokens, start, end)

    def _self_hosted(self, label: str, pricing: Pricing, source: str = "self-hosted") -> TokenPrice:
        assert pricing.cost_per_hour is not None
        rate = pricing.throughput_tokens_per_s
        if rate is None:
            meter = self._meters.get(label)
            rate = meter.tokens_per_s() if meter is not None else None
        if not rate:
            return TokenPrice(0.0, 0.0, 0.0, source)  # nothing measured yet
        per_token = pricing.cost_per_hour / 3600.0 / rate
        return TokenPrice(per_token, per_token, per_token, source)


_KINDS: dict[tuple[str, float], str] = {}


def configured_kind(deployment: Deployment, local_cost_per_hour: float) -> str:
    """How ``deployment`` is priced before any traffic: configured, database, default or unknown."""
    pricing = deployment.pricing
    if pricing is not None and (pricing.cost_per_hour is not None or pricing.input_per_mtok is not None):
        return "configured"
    if deployment.provider == "local" and pricing is None:
        return "default" if local_cost_per_hour else "unknown"
    key = (deployment.label, local_cost_per_hour)
    kind = _KINDS.get(key)
    if kind is None:
        name = pricing.price_model if pricing is not None and pricing.price_model else deployment.model
        kind = _KINDS[key] = "database" if lookup(name, deployment.provider) is not None else "unknown"
    return kind
