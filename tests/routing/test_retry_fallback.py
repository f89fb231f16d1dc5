"""Retries, failover, fallbacks and the context-window fallback, through the route stage (no sockets)."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError
from tests.routing.route_helpers import Clock, Script, config, ctx, dep, drain, model, stage, upstream_error

from tokenomy.config import ConfigError
from tokenomy.config.routing import RetryConfig
from tokenomy.errors import GatewayError, invalid_request
from tokenomy.routing.fallback import fallback_chain
from tokenomy.routing.health import CircuitState
from tokenomy.routing.retry import Backoff, Verdict, retryable, verdict

# -- classification and backoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (upstream_error(429, "rate_limit_exceeded"), Verdict.COOL),
        (upstream_error(503, "overloaded"), Verdict.COOL),
        (upstream_error(502, "upstream_error"), Verdict.FAILED),
        (upstream_error(502, "upstream_unreachable"), Verdict.FAILED),
        (upstream_error(504, "upstream_timeout"), Verdict.FAILED),
        (invalid_request("bad"), Verdict.CLIENT),
        (GatewayError(500, "bug", "server_error", code="internal_error"), Verdict.CLIENT),
    ],
)
def test_errors_are_classified(error: GatewayError, expected: Verdict) -> None:
    assert verdict(error) is expected
    assert retryable(error) is (expected is not Verdict.CLIENT)


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    backoff = Backoff(RetryConfig(backoff_base_ms=100, backoff_max_ms=1000), random.Random(1))
    samples = {n: [backoff.delay(n) for _ in range(500)] for n in (1, 2, 3, 8)}
    for n, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (8, 1.0)):
        assert min(samples[n]) >= 0 and max(samples[n]) <= ceiling
        assert max(samples[n]) > 0.9 * ceiling  # jitter spans the whole range


# -- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ((model("a", dep("x"), fallbacks="[spar]"), model("spare", dep("y"))), "not a model; did you mean 'spare'"),
        ((model("a", dep("x"), fallbacks="[a]"),), "falls back to itself"),
        (
            (
                model("a", dep("x"), fallbacks="[b]"),
                model("b", dep("y"), fallbacks="[c]"),
                model("c", dep("z"), fallbacks="[a]"),
            ),
            "cycle: a -> b -> c -> a",
        ),
        ((model("a", dep("x"), context_window_fallback="{model: big, max_prompt_tokens: 9}"),), "'big'"),
    ],
)
def test_fallback_references_are_validated(models: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=r"falls back|cycle") as info:
        config(*models)
    assert message in str(info.value)


def test_retry_config_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        RetryConfig(backoff_base_ms=500, backoff_max_ms=100)
    with pytest.raises(ValidationError):
        RetryConfig(max_attempts=0)


def test_fallback_chain_is_depth_first_and_each_model_once() -> None:
    cfg = config(
        model("a", dep("x"), fallbacks="[b, c]"),
        model("b", dep("y"), fallbacks="[d]"),
        model("c", dep("z"), fallbacks="[d]"),
        model("d", dep("w")),
    )
    by_name = {m.name: m for m in cfg.models}
    assert [m.name for m in fallback_chain(by_name["a"], by_name)] == ["a", "b", "d", "c"]


# -- the route stage --------------------------------------------------------------------------------------


async def test_a_failure_moves_to_another_deployment_and_records_attempts() -> None:
    route, script = stage(config(model("m", dep("a"), dep("b")))), Script()
    script.queue("a", upstream_error(502))
    request = ctx("m")
    await route(request, script)
    first = script.calls[0]
    if first == "b":  # round-robin started on b: run once more so that a fails
        request = ctx("m")
        await route(request, script)
    assert script.calls[-2:] == ["a", "b"]
    assert request.route == "retry:2" and request.deployment is not None and request.deployment.label == "b"
    attempts = request.decisions["attempts"]
    assert [(d, o) for d, o, _ in attempts] == [("a", "upstream_error"), ("b", "ok")]


async def test_fallback_model_answers_when_the_primary_fails() -> None:
    cfg = config(model("m", dep("a"), fallbacks="[spare]"), model("spare", dep("s")))
    route, script = stage(cfg), Script()
    script.queue("a", upstream_error(504, "upstream_timeout"))
    request = ctx("m")
    response = await route(request, script)
    assert script.calls == ["a", "s"] and request.route == "fallback:spare" and request.served_model == "spare"
    assert response.body["choices"][0]["message"]["content"] == "s"  # type: ignore[union-attr]


async def test_client_errors_are_not_retried() -> None:
    cfg = config(model("m", dep("a"), dep("b"), fallbacks="[spare]"), model("spare", dep("s")))
    route, script = stage(cfg), Script()
    script.queue("a", invalid_request("nope"))
    script.queue("b", invalid_request("nope"))
    with pytest.raises(GatewayError) as info:
        await route(ctx("m"), script)
    assert info.value.status == 400 and len(script.calls) == 1


async def test_when_everything_fails_the_last_error_is_the_answer() -> None:
    cfg = config(model("m", dep("a"), fallbacks="[spare]"), model("spare", dep("s")))
    route, script = stage(cfg), Script()
    script.queue("a", upstream_error(502))
    script.queue("s", upstream_error(504, "upstream_timeout"))
    with pytest.raises(GatewayError) as info:
        await route(ctx("m"), script)
    assert info.value.code == "upstream_timeout" and script.calls == ["a", "s"]


async def test_same_deployment_is_retried_with_backoff_only_when_configured() -> None:
    clock = Clock()
    retries = "{max_attempts: 3, retry_same_deployment: true, backoff_base_ms: 100, backoff_max_ms: 1000}"
    route, script = stage(config(model("m", dep("a"), retries=retries)), clock), Script()
    script.queue("a", upstream_error(502), upstream_error(502))
    request = ctx("m")
    await route(request, script)
    assert script.calls == ["a", "a", "a"] and request.route == "retry:3"
    assert len(clock.sleeps) == 2 and clock.sleeps[0] <= 0.1 and clock.sleeps[1] <= 0.2

    plain, script = stage(config(model("m", dep("a")))), Script()
    script.queue("a", upstream_error(502))
    with pytest.raises(GatewayError):
        await plain(ctx("m"), script)
    assert script.calls == ["a"]


async def test_open_circuit_and_429_cool_down_steer_traffic_away() -> None:
    clock = Clock()
    cfg = config(model("m", dep("a"), dep("b")), routing="{health: {failures_to_open: 2, cooldown_s: 5}}")
    route, script = stage(cfg, clock), Script()
    a = route._plans["m"].pools[0].slots[0]
    script.queue("a", upstream_error(502), upstream_error(502))
    for _ in range(4):
        await route(ctx("m"), script)
    assert a.health.state == CircuitState.OPEN and script.calls.count("a") == 2
    script.calls.clear()
    for _ in range(4):
        await route(ctx("m"), script)
    assert script.calls == ["b"] * 4
    clock.now += 5  # half-open: the next request probes a, and its success closes the circuit
    script.calls.clear()
    for _ in range(4):
        await route(ctx("m"), script)
    assert "a" in script.calls and a.health.state == CircuitState.CLOSED
    script.queue("a", upstream_error(429, "rate_limit_exceeded", retry_after="3"))
    script.calls.clear()
    for _ in range(4):
        await route(ctx("m"), script)
    assert script.calls.count("a") == 1  # cooled for 3 s after its 429
    assert a.health.state == CircuitState.CLOSED and a.health.failures == 0


async def test_a_lone_deployment_is_always_tried_whatever_its_health() -> None:
    route, script = stage(config(model("m", dep("a")))), Script()
    script.queue("a", upstream_error(429, "rate_limit_exceeded", retry_after="60"))
    with pytest.raises(GatewayError) as info:
        await route(ctx("m"), script)
    assert info.value.status == 429
    await route(ctx("m"), script)  # no alternative: the upstream decides
    assert script.calls == ["a", "a"]


async def test_with_no_healthy_deployment_the_gateway_answers_503_with_retry_after() -> None:
    cfg = config(model("m", dep("a"), dep("b")), routing="{health: {failures_to_open: 1, cooldown_s: 8}}")
    route, script = stage(cfg), Script()
    script.queue("a", upstream_error(502))
    script.queue("b", upstream_error(502))
    with pytest.raises(GatewayError) as info:
        await route(ctx("m"), script)
    assert info.value.status == 502
    with pytest.raises(GatewayError) as info:
        await route(ctx("m"), script)
    assert (info.value.status, info.value.code) == (503, "no_healthy_deployment")
    assert info.value.headers["retry-after"] == "8" and len(script.calls) == 2


async def test_a_stream_failing_before_its_first_chunk_is_retried() -> None:
    route, script = stage(config(model("m", dep("a"), fallbacks="[spare]"), model("spare", dep("s")))), Script()
    script.queue("a", ("stream-error", upstream_error(502)))
    request = ctx("m", stream=True)
    assert await drain(await route(request, script)) == ["s-0", "s-1", "s-2"]
    assert request.route == "fallback:spare"
    assert route._plans["m"].pools[0].slots[0].stats.in_flight == 0


async def test_a_stream_failing_after_its_first_chunk_ends_with_the_error() -> None:
    route, script = stage(config(model("m", dep("a"), fallbacks="[spare]"), model("spare", dep("s")))), Script()
    script.queue("a", "cut")
    response = await route(ctx("m", stream=True), script)
    got: list[str] = []
    with pytest.raises(GatewayError) as info:
        got.extend(await drain(response))
    assert info.value.code == "upstream_bad_stream" and script.calls == ["a"]
    slot = route._plans["m"].pools[0].slots[0]
    assert slot.health.failures == 1 and slot.stats.in_flight == 0


async def test_a_dropped_stream_releases_its_in_flight_count() -> None:
    route, script = stage(config(model("m", dep("a")))), Script()
    response = await route(ctx("m", stream=True), script)
    slot = route._plans["m"].pools[0].slots[0]
    assert slot.stats.in_flight == 1
    del response
    assert slot.stats.in_flight == 0


async def test_long_prompts_go_to_the_context_window_fallback() -> None:
    cfg = config(
        model("small", dep("a"), context_window_fallback="{model: big, max_prompt_tokens: 50}"),
        model("big", dep("b")),
    )
    route, script = stage(cfg), Script()
    short = ctx("small")
    await route(short, script)
    long = ctx("small", messages=[{"role": "user", "content": "word " * 100}])
    await route(long, script)
    assert script.calls == ["a", "b"]
    assert short.route == "single" and long.route == "context-window:big" and long.served_model == "big"
    assert long.decisions["prompt_tokens"] > 100
