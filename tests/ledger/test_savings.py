"""Cost, baseline and the split of savings by lever."""

from __future__ import annotations

import pytest

from tokenomy.ledger.savings import attribute
from tokenomy.pricing.prices import TokenPrice

CHEAP = TokenPrice(1e-7, 4e-7, 5e-8, "config")
DEAR = TokenPrice(1e-5, 3e-5, 5e-6, "config")


def test_no_lever_means_baseline_equals_cost() -> None:
    c = attribute(
        served=DEAR,
        baseline=DEAR,
        prompt_tokens=100,
        completion_tokens=50,
        cached_tokens=0,
        original_prompt_tokens=None,
        cache_hit=False,
    )
    assert c.cost == c.baseline == pytest.approx(100 * 1e-5 + 50 * 3e-5)
    assert set(c.saved) == {"cache", "routing", "compression", "batching"} and not any(c.saved.values())


def test_routing_saving_is_the_price_difference() -> None:
    c = attribute(
        served=CHEAP,
        baseline=DEAR,
        prompt_tokens=100,
        completion_tokens=50,
        cached_tokens=0,
        original_prompt_tokens=None,
        cache_hit=False,
    )
    assert c.saved["routing"] == pytest.approx(DEAR.cost(100, 50) - CHEAP.cost(100, 50))
    assert c.baseline - c.cost == pytest.approx(sum(c.saved.values()))


def test_compression_and_routing_add_up() -> None:
    c = attribute(
        served=CHEAP,
        baseline=DEAR,
        prompt_tokens=60,
        completion_tokens=50,
        cached_tokens=0,
        original_prompt_tokens=100,
        cache_hit=False,
    )
    assert c.saved["compression"] == pytest.approx(40 * DEAR.input)
    assert c.baseline == pytest.approx(DEAR.cost(100, 50))
    assert c.baseline - c.cost == pytest.approx(sum(c.saved.values()))


def test_cache_hit_saves_everything_but_the_lookup() -> None:
    c = attribute(
        served=DEAR,
        baseline=DEAR,
        prompt_tokens=100,
        completion_tokens=50,
        cached_tokens=0,
        original_prompt_tokens=None,
        cache_hit=True,
        extra_cost=1e-6,
    )
    assert c.cost == pytest.approx(1e-6)
    assert c.saved["cache"] == pytest.approx(DEAR.cost(100, 50) - 1e-6)
    assert c.saved["routing"] == 0


def test_provider_cached_tokens_are_priced_cheaper_in_both() -> None:
    c = attribute(
        served=DEAR,
        baseline=DEAR,
        prompt_tokens=100,
        completion_tokens=0,
        cached_tokens=80,
        original_prompt_tokens=None,
        cache_hit=False,
    )
    assert c.cost == pytest.approx(20 * 1e-5 + 80 * 5e-6) == c.baseline


def test_stage_reported_batching_saving_raises_the_baseline() -> None:
    c = attribute(
        served=DEAR,
        baseline=DEAR,
        prompt_tokens=10,
        completion_tokens=0,
        cached_tokens=0,
        original_prompt_tokens=None,
        cache_hit=False,
        reported={"batching": 0.5},
    )
    assert c.saved["batching"] == 0.5 and c.baseline == pytest.approx(c.cost + 0.5)


def test_cascade_rejected_attempts_come_off_the_routing_saving() -> None:
    c = attribute(
        served=CHEAP,
        baseline=DEAR,
        prompt_tokens=100,
        completion_tokens=50,
        cached_tokens=0,
        original_prompt_tokens=None,
        cache_hit=False,
        extra_cost=1e-4,
        routing_overhead=True,
    )
    assert c.baseline - c.cost == pytest.approx(sum(c.saved.values()))


CLAUDE = TokenPrice(8e-7, 4e-6, 8e-8, "config", 1e-6)  # input, output, cache read, source, cache write


def test_cache_writes_are_priced_at_the_write_price() -> None:
    assert CLAUDE.cost(1000, 10, cached_tokens=0, written=600) == pytest.approx(400 * 8e-7 + 600 * 1e-6 + 10 * 4e-6)
    assert CHEAP.cost(1000, 0, written=600) == pytest.approx(1000 * 1e-7)  # no write price known: the input price


@pytest.mark.parametrize(("cached", "written"), [(600, 0), (0, 600), (300, 200)])
def test_gateway_breakpoints_credit_compression_against_a_request_without_them(cached: int, written: int) -> None:
    c = attribute(
        served=CLAUDE,
        baseline=CLAUDE,
        prompt_tokens=1000,
        completion_tokens=10,
        cached_tokens=cached,
        original_prompt_tokens=1100,
        cache_hit=False,
        cache_write_tokens=written,
        gateway_cache_breakpoints=True,
    )
    assert c.baseline == pytest.approx(CLAUDE.cost(1100, 10))  # the client's request: no cache at all
    assert c.cost == pytest.approx(CLAUDE.cost(1000, 10, cached, written))
    assert c.saved["compression"] == pytest.approx(CLAUDE.cost(1100, 10) - CLAUDE.cost(1000, 10, cached, written))
    assert c.saved["routing"] == pytest.approx(0)
    assert c.baseline - c.cost == pytest.approx(sum(c.saved.values()))


def test_client_breakpoints_are_not_credited_to_compression() -> None:
    c = attribute(
        served=CLAUDE,
        baseline=CLAUDE,
        prompt_tokens=1000,
        completion_tokens=10,
        cached_tokens=600,
        original_prompt_tokens=None,
        cache_hit=False,
    )
    assert c.saved["compression"] == 0 and c.baseline == pytest.approx(c.cost)
