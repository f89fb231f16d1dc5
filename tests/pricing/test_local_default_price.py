"""Embedded models are priced by machine time: a default cost per hour over measured tokens/s."""

from __future__ import annotations

import logging

import pytest

from tokenomy.config.models import Deployment, Pricing
from tokenomy.pricing.prices import DEFAULT_LOCAL_COST_PER_HOUR, PriceBook, price_kind

LOCAL = Deployment(provider="local", model="smollm2-135m-instruct")


def test_default_price_is_cost_per_hour_over_measured_throughput(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook()
    with caplog.at_level(logging.INFO, logger="tokenomy.pricing"):
        book.observe(LOCAL, 100, 1000.0, 1002.0)  # 50 tokens/s
        price = book.price(LOCAL)
        book.price(LOCAL)
    assert price.source == "default" and price_kind(price.source) == "default"
    assert price.input == pytest.approx(DEFAULT_LOCAL_COST_PER_HOUR / 3600 / 50)
    assert price.cost(60, 40) == pytest.approx(100 * DEFAULT_LOCAL_COST_PER_HOUR / 3600 / 50)
    said = [r for r in caplog.records if "default $0.10 per hour" in r.getMessage()]
    assert len(said) == 1, "the default price is announced once per deployment"


def test_configured_cost_per_hour_wins_and_zero_leaves_it_unpriced(caplog: pytest.LogCaptureFixture) -> None:
    own = Deployment(provider="local", model="smollm2-135m-instruct", pricing=Pricing(cost_per_hour=3.6))
    book = PriceBook()
    book.observe(own, 100, 0.0, 1.0)
    assert book.price(own).source == "self-hosted" and price_kind("self-hosted") == "configured"
    assert book.price(own).input == pytest.approx(3.6 / 3600 / 100)
    off = PriceBook(local_cost_per_hour=0)
    with caplog.at_level(logging.WARNING, logger="tokenomy.pricing"):
        assert off.price(LOCAL).source == "unknown" and price_kind("unknown") == "unknown"
        off.price(LOCAL)
    assert len([r for r in caplog.records if "no price known" in r.getMessage()]) == 1
