"""The ``route`` stage: resolve the requested model, choose a deployment, and retry or fall back.

Each attempt picks a usable deployment of the current model (balancing strategy, passive health,
RPM/TPM limits: ``tokenomy.routing``) and calls the rest of the chain (ready check, dispatch).
A retryable failure (429, 5xx, timeout, refused connection) moves to another deployment, or
re-tries the same one after a jittered backoff, up to the model's ``max_attempts``; then the next
fallback model. Only failures before anything reached the client are retried: a stream is
returned once its first chunk has arrived, and a failure after that ends it with an error event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tokenomy.config.models import GatewayConfig, LogicalModel
from tokenomy.config.policy import router_names
from tokenomy.errors import GatewayError, not_found
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Response, Stream, Usage
from tokenomy.routing.fallback import PromptTokens, context_window_target, requested_max_tokens
from tokenomy.routing.health import CircuitState
from tokenomy.routing.limits import LimiterFactory
from tokenomy.routing.pool import EXHAUSTED, LIMITED, Plan, Pool, Slot, build_plans
from tokenomy.routing.retry import Verdict, outcome_label, retry_after_s, verdict
from tokenomy.routing.shared_limits import SharedLimiters
from tokenomy.state.shared_memory import SharedRateLimiter, worker_state
from tokenomy.telemetry import metrics
from tokenomy.telemetry.log_limit import RateLimitedLog

_UPSTREAM_LOG = logging.getLogger("tokenomy.upstream")

Attempt = tuple[str, str, float]  # (deployment, "ok" or the error code, milliseconds)


class ModelTable:
    """Client-facing model names (and aliases) to their logical models."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._models: dict[str, LogicalModel] = {}
        for model in config.models:
            for name in (model.name, *model.aliases):
                self._models[name] = model
        self.names = sorted({*self._models, *router_names(config.routers)})  # routers: see pipeline/policy.py

    def resolve(self, name: str) -> LogicalModel:
        """The logical model called ``name``; 404 listing the available ones otherwise."""
        model = self._models.get(name)
        if model is None:
            raise not_found(
                f"The model {name!r} does not exist on this gateway. Available models: {', '.join(self.names)}.",
                param="model",
                code="model_not_found",
            )
        return model


class RouteStage:
    """Pick the logical model and a deployment; retry and fall back around the rest of the chain."""

    name = "route"

    def __init__(
        self,
        table: ModelTable,
        limiters: LimiterFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        config = table.config
        self._table = table
        self._plans = build_plans(config, limiters or _shared_limiters(config), clock)
        self._by_name = {name: model for model in config.models for name in (model.name, *model.aliases)}
        self._max_wait = config.routing.limits.max_wait_ms / 1000.0
        self._tokens = PromptTokens(config.local.generation.model_path)
        self._clock = clock
        self._sleep = sleep
        # one line per deployment and outcome per 10 s, per gateway: a module-wide limiter would let
        # one gateway's failures silence another's (two gateways in one process, e.g. embedded)
        self._upstream_log = RateLimitedLog(_UPSTREAM_LOG)

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        model = self._table.resolve(ctx.model)
        ctx.logical_model = model
        plan = self._plans[model.name]
        tokens, note = 0, None
        if plan.count_tokens:
            plan, tokens, note = self._count(ctx, model, plan)
        attempts: list[Attempt] = []
        ctx.decisions["attempts"] = attempts
        failed: GatewayError | None = None  # the last attempt's error
        blocked: GatewayError | None = None  # why the first model that could take nothing could not
        waited = 0.0
        for step, pool in enumerate(plan.pools):
            tried: list[Slot] = []
            while len(tried) < pool.max_attempts:
                if pool.limited:
                    slot, wait, reason = await pool.take(self._clock(), tried, tokens, ctx.stream, plan.gated)
                else:
                    slot, wait, reason = pool.choose(self._clock(), tried, ctx.stream, plan.gated)
                if slot is None:
                    if reason == EXHAUSTED:
                        break
                    pause = wait + 0.001  # just past the instant it frees, whatever the float rounding
                    if pause <= self._max_wait - waited:  # queue briefly for capacity
                        metrics.child(metrics.RATE_LIMIT_WAITS, pool.model.name).inc()
                        waited += pause
                        await self._sleep(pause)
                        continue
                    blocked = blocked or _unavailable(pool.model.name, wait, reason == LIMITED)
                    break
                if slot in tried:
                    await self._sleep(pool.backoff.delay(tried.count(slot)))
                tried.append(slot)
                ctx.deployment = slot.deployment
                ctx.served_model = pool.model.name
                try:
                    response = await self._attempt(ctx, slot, call_next, tokens, attempts)
                except GatewayError as exc:
                    if verdict(exc) is Verdict.CLIENT:
                        raise
                    failed = exc
                    continue
                ctx.route = note or _route_name(pool, step, len(attempts))
                return response
        ctx.route = note or _route_name(pool, step, len(attempts))
        error = failed or blocked
        assert error is not None
        raise error

    def _count(self, ctx: CallContext, model: LogicalModel, plan: Plan) -> tuple[Plan, int, str | None]:
        """Count the prompt; switch to the context-window fallback when it is too long."""
        tokens = self._tokens.count(ctx.endpoint.value, ctx.body, model.deployments[0])
        ctx.decisions["prompt_tokens"] = tokens
        note = None
        target = context_window_target(model, tokens, self._by_name)
        if target is not None:
            plan, note = self._plans[target.name], f"context-window:{target.name}"
        return plan, tokens + requested_max_tokens(ctx.body), note

    async def _attempt(
        self, ctx: CallContext, slot: Slot, call_next: Handler, tokens: int, attempts: list[Attempt]
    ) -> Response:
        """One call to ``slot``: its statistics, health and limiter are updated with the outcome."""
        stats, health = slot.stats, slot.health
        charged = tokens if slot.tpm else 0
        if health.state is not CircuitState.CLOSED:
            health.begin(self._clock())
        stats.in_flight += 1
        started = time.perf_counter()
        try:
            response = await call_next(ctx)
            if isinstance(response, Stream):
                first = await _first_chunk(response)
        except GatewayError as exc:
            stats.in_flight -= 1
            elapsed = time.perf_counter() - started
            attempts.append((slot.label, self._failed(slot, exc, elapsed, ctx.stream), elapsed * 1000.0))
            if slot.limiter is not None and charged:
                slot.limiter.settle(charged, 0)  # nothing was served: the tokens come back
            raise
        except BaseException:
            stats.in_flight -= 1
            health.release()
            raise
        elapsed = time.perf_counter() - started
        attempts.append((slot.label, "ok", elapsed * 1000.0))
        slot.ok += 1
        health.success()
        if isinstance(response, Completion):
            stats.in_flight -= 1
            stats.observe(elapsed, False)
            if slot.limiter is not None and charged:
                slot.limiter.settle(charged, _used(response.usage, response.body.get("usage"), charged))
            return response
        stats.observe(elapsed, True)
        return Stream(_Relay(ctx, slot, first, response.chunks, charged, self._failed), response.aclose)

    def _failed(self, slot: Slot, exc: GatewayError, elapsed: float, stream: bool) -> str:
        """Tell health and statistics about a failed attempt; return its outcome label."""
        outcome = outcome_label(exc)
        slot.failed[outcome] = slot.failed.get(outcome, 0) + 1
        kind = verdict(exc)
        if kind is not Verdict.CLIENT:
            self._upstream_log.warning(
                f"{slot.label}|{outcome}",
                "upstream %s failed after %.0f ms: %s (HTTP %d, %s)",
                slot.label,
                elapsed * 1000.0,
                exc.message,
                exc.status,
                outcome,
            )
        if kind is Verdict.FAILED:
            slot.health.failure(self._clock())
            slot.stats.penalize(elapsed, stream)
        elif kind is Verdict.COOL:
            slot.health.rate_limited(self._clock(), retry_after_s(exc))
        else:
            slot.health.success()  # the request was wrong, not the deployment
        return outcome


class _Relay:
    """The stream after its first chunk: a failure from here on ends it (no retry) and counts against
    the deployment. Its slot's in-flight count and token charge are settled exactly once, however
    the stream ends (exhausted, failed, closed, or dropped unread)."""

    __slots__ = ("_charged", "_chunks", "_ctx", "_done", "_first", "_on_failure", "_slot")

    def __init__(
        self,
        ctx: CallContext,
        slot: Slot,
        first: dict[str, Any] | None,
        chunks: AsyncIterator[dict[str, Any]],
        charged: int,
        on_failure: Callable[[Slot, GatewayError, float, bool], str],
    ) -> None:
        self._ctx = ctx
        self._slot = slot
        self._first = first
        self._chunks = chunks
        self._charged = charged
        self._on_failure = on_failure
        self._done = False

    def __aiter__(self) -> _Relay:
        return self

    async def __anext__(self) -> dict[str, Any]:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._done:
            raise StopAsyncIteration
        try:
            return await anext(self._chunks)
        except GatewayError as exc:
            self._on_failure(self._slot, exc, 0.0, True)
            self._finish()
            raise
        except BaseException:
            self._finish()
            raise

    async def aclose(self) -> None:
        """Stop early: release the upstream stream."""
        self._first = None
        self._finish()
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        slot = self._slot
        slot.stats.in_flight -= 1
        if slot.limiter is not None and self._charged:
            slot.limiter.settle(self._charged, _used(self._ctx.usage, None, self._charged))

    def __del__(self) -> None:
        self._finish()


async def _first_chunk(stream: Stream) -> dict[str, Any] | None:
    """Wait for a stream's first chunk (``None``: it was empty); on failure release it and re-raise."""
    chunks = stream.chunks
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None
    except BaseException:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
        if stream.aclose is not None:
            result = stream.aclose()
            if hasattr(result, "__await__"):
                await result
        raise


def _used(usage: Usage | None, raw: Any, charged: int) -> int:
    """Tokens really used according to the response (the charge itself when it does not say)."""
    if usage is None:
        usage = Usage.from_openai(raw)
    if usage is None or not (usage.prompt_tokens or usage.completion_tokens):
        return charged
    return usage.prompt_tokens + usage.completion_tokens


def _route_name(pool: Pool, step: int, attempts: int) -> str:
    if step:
        return f"fallback:{pool.model.name}"
    if attempts > 1:
        return f"retry:{attempts}"
    return pool.route_name


def _unavailable(model: str, wait: float, limited: bool) -> GatewayError:
    """The error when no deployment of ``model`` can take the request: all at their rate limits, or unhealthy."""
    retry = {"retry-after": str(max(1, math.ceil(wait)))} if math.isfinite(wait) else {}
    if limited:
        return GatewayError(
            429,
            f"Every deployment of {model!r} is at its rate limit; retry after the indicated delay.",
            "rate_limit_error",
            code="rate_limit_exceeded",
            headers=retry,
        )
    return GatewayError(
        503,
        f"No deployment of {model!r} is healthy right now; retry shortly.",
        "server_overloaded",
        code="no_healthy_deployment",
        headers=retry,
    )


def _shared_limiters(config: GatewayConfig) -> LimiterFactory | None:
    """Redis-backed deployment buckets when ``routing.limits.store: redis``; in a worker of ``serve
    --workers N``, buckets in the memory the workers share; else ``None`` (in process)."""
    limits = config.routing.limits
    if limits.store == "redis" and limits.redis_url is not None:
        url = limits.redis_url.resolve()
        if not url:
            raise ValueError(f"the rate-limit redis_url variable ${{{limits.redis_url.env}}} is not set")
        from tokenomy.budgets.redis_client import redis_client
        from tokenomy.keys.limits import RedisRateLimiter

        return SharedLimiters(RedisRateLimiter(redis_client(url)))
    state = worker_state()
    return None if state is None else SharedLimiters(SharedRateLimiter(state))
