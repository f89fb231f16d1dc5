"""Prices: the offline database, config overrides, and self-hosted cost from measured throughput."""

from __future__ import annotations

import pytest

from tokenomy.config.models import Deployment, Pricing
from tokenomy.pricing.prices import PriceBook, lookup
from tokenomy.pricing.throughput import ThroughputMeter


def test_database_prices_known_models_and_cached_input() -> None:
    price = lookup("gpt-4o-mini", "openai")
    assert price is not None and price.source == "genai-prices"
    assert price.input == pytest.approx(0.15e-6) and price.output == pytest.approx(0.6e-6)
    assert price.cached_input < price.input
    assert lookup("claude-3-5-haiku-latest", "anthropic") is not None
    assert lookup("definitely-not-a-model-xyz", "openai") is None


def test_unknown_model_is_unpriced_and_config_wins() -> None:
    book = PriceBook()
    unknown = Deployment(provider="openai", base_url="http://x", model="my-finetune")
    assert book.price(unknown).source == "unknown" and book.price(unknown).cost(1000, 1000) == 0
    priced = Deployment(
        provider="openai",
        base_url="http://x",
        model="gpt-4o-mini",
        pricing=Pricing(input_per_mtok=1, output_per_mtok=2, cached_input_per_mtok=0.5),
    )
    price = book.price(priced)
    assert price.source == "config" and price.cost(1_000_000, 1_000_000, 500_000) == pytest.approx(0.5 + 0.25 + 2)
    alias = Deployment(provider="openai", base_url="http://x", model="prod-mini", pricing=Pricing(price_model="gpt-4o"))
    assert book.price(alias).source == "genai-prices" and book.price(alias).input == pytest.approx(2.5e-6)


def test_self_hosted_price_follows_measured_throughput() -> None:
    book = PriceBook()
    dep = Deployment(provider="local", model="smollm2-135m-instruct", pricing=Pricing(cost_per_hour=3.6))
    assert book.price(dep).cost(100, 100) == 0  # nothing measured yet
    book.observe(dep, 1000, 100.0, 101.0)  # 1000 tokens in one busy second
    assert book.price(dep).source == "self-hosted"
    assert book.price(dep).input == pytest.approx(3.6 / 3600 / 1000)
    fixed = Deployment(provider="local", model="x", pricing=Pricing(cost_per_hour=7.2, throughput_tokens_per_s=2000))
    assert book.price(fixed).output == pytest.approx(7.2 / 3600 / 2000)


def test_throughput_counts_overlapping_requests_once() -> None:
    meter = ThroughputMeter()
    meter.observe(100, 0.0, 1.0)
    meter.observe(100, 0.5, 1.0)  # served alongside the first (a batching server)
    meter.observe(100, 2.0, 3.0)
    assert meter.tokens_per_s() == pytest.approx(300 / 2.0, rel=0.01)


def test_pricing_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="not both"):
        Pricing(input_per_mtok=1, output_per_mtok=1, cost_per_hour=2)
    with pytest.raises(ValueError, match="both input_per_mtok and output_per_mtok"):
        Pricing(input_per_mtok=1)
