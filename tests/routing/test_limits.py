"""RPM/TPM token buckets, their reconciliation, and how the route stage spreads, queues or refuses."""

from __future__ import annotations

import math

import pytest
from tests.routing.route_helpers import Clock, Script, config, ctx, dep, model, stage

from tokenomy.errors import GatewayError
from tokenomy.routing.limits import LocalLimiter, LocalLimiters


def test_rpm_bucket_holds_a_minute_and_refills() -> None:
    clock = Clock()
    limiter = LocalLimiter(rpm=3, tpm=None, clock=clock)
    assert [limiter.try_acquire(0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert math.isclose(limiter.try_acquire(0), 20.0)  # one request per 20 s
    clock.now += 20
    assert limiter.try_acquire(0) == 0.0 and limiter.try_acquire(0) > 0


def test_tpm_charges_estimate_and_settles_to_usage() -> None:
    clock = Clock()
    limiter = LocalLimiter(rpm=None, tpm=1000, clock=clock)
    assert limiter.try_acquire(600) == 0.0
    assert math.isclose(limiter.try_acquire(600), 200 / (1000 / 60))  # 400 left, 200 short
    limiter.settle(600, 100)  # it used 100: 500 come back
    assert limiter.try_acquire(600) == 0.0
    limiter.settle(0, 500)  # usage beyond the estimate is charged
    assert limiter.tpm is not None and math.isclose(limiter.tpm.level, -200)


def test_a_request_larger_than_the_bucket_waits_for_a_full_one_then_goes_into_debt() -> None:
    clock = Clock()
    limiter = LocalLimiter(rpm=None, tpm=100, clock=clock)
    assert limiter.try_acquire(500) == 0.0
    assert limiter.try_acquire(1) > 0
    clock.now += 60 * 5  # the debt of 400 and a full bucket again
    assert limiter.try_acquire(500) == 0.0


def test_limiters_are_shared_by_key() -> None:
    factory = LocalLimiters(Clock())
    assert factory.limiter("k", 1, None) is factory.limiter("k", 1, None)
    assert factory.limiter("k", 1, None) is not factory.limiter("other", 1, None)


PRICE = "{{input_per_mtok: {0}, output_per_mtok: {0}}}"


async def test_rpm_limits_spread_load_beyond_the_cheapest_deployment() -> None:
    cfg = config(
        model(
            "m",
            dep("a", rpm=2, pricing=PRICE.format(1)),
            dep("b", rpm=2, pricing=PRICE.format(2)),
            dep("c", rpm=2, pricing=PRICE.format(3)),
            strategy="cheapest",
        ),
        routing="{limits: {max_wait_ms: 0}}",
    )
    route, script = stage(cfg), Script()
    for _ in range(6):
        await route(ctx("m"), script)
    assert script.calls == ["a", "a", "b", "b", "c", "c"]
    with pytest.raises(GatewayError) as info:
        await route(ctx("m"), script)
    assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
    assert info.value.headers["retry-after"] == "30"  # one request per 30 s per deployment


@pytest.mark.parametrize(("max_wait_ms", "served"), [(1500, True), (500, False)])
async def test_a_full_deployment_queues_briefly_within_max_wait(max_wait_ms: int, served: bool) -> None:
    clock = Clock()
    cfg = config(model("m", dep("a", rpm=60)), routing=f"{{limits: {{max_wait_ms: {max_wait_ms}}}}}")
    route, script = stage(cfg, clock), Script()
    for _ in range(60):
        await route(ctx("m"), script)
    assert clock.sleeps == []
    if served:
        await route(ctx("m"), script)  # waits 1 s for the next token
        assert clock.sleeps == [pytest.approx(1.0, abs=0.002)] and len(script.calls) == 61
    else:
        with pytest.raises(GatewayError) as info:
            await route(ctx("m"), script)
        assert info.value.status == 429 and info.value.headers["retry-after"] == "1"
        assert clock.sleeps == [] and len(script.calls) == 60


async def test_tpm_counts_prompt_plus_max_tokens_and_reconciles_with_usage() -> None:
    cfg = config(model("m", dep("a", tpm=100)), routing="{limits: {max_wait_ms: 0}}")
    route, script = stage(cfg), Script()
    request = ctx("m", max_tokens=60)
    await route(request, script)
    prompt = request.decisions["prompt_tokens"]
    assert 5 < prompt < 20  # "hello" plus OpenAI's per-message overhead, counted with tiktoken
    limiter = route._plans["m"].pools[0].slots[0].limiter
    assert isinstance(limiter, LocalLimiter) and limiter.tpm is not None
    assert math.isclose(limiter.tpm.level, 100 - 12, abs_tol=0.1)  # settled to the 12 tokens used
    with pytest.raises(GatewayError):
        await route(ctx("m", max_tokens=95), script)  # 95 + prompt > 88 left
