"""Configuration of balancing, passive health, rate limits, retries and fallbacks (see docs/routing.md)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret

if TYPE_CHECKING:
    from tokenomy.config.models import LogicalModel

Strategy = Literal["round-robin", "weighted", "least-busy", "lowest-latency", "cheapest"]


class RetryConfig(_Frozen):
    """Attempts per logical model on retryable errors (429, 5xx, timeouts, refused connections).

    A failed attempt always moves on to a deployment not tried yet, then to the fallback models;
    sending the request again to a deployment already tried (after a jittered backoff) is opt-in.
    """

    max_attempts: int = Field(default=3, ge=1, le=20, description="upstream calls per model, the first included")
    retry_same_deployment: bool = Field(
        default=False, description="re-try a deployment already tried when no other is usable (with backoff)"
    )
    backoff_base_ms: float = Field(default=50.0, ge=0, description="first backoff before re-trying a deployment")
    backoff_max_ms: float = Field(default=2000.0, ge=0, description="cap of the exponential backoff")

    @model_validator(mode="after")
    def _ordered(self) -> RetryConfig:
        if self.backoff_max_ms < self.backoff_base_ms:
            raise ValueError("backoff_max_ms must be at least backoff_base_ms")
        return self


class HealthConfig(_Frozen):
    """Passive health: a circuit per deployment, opened by consecutive failures."""

    failures_to_open: int = Field(default=3, ge=1, description="consecutive failures that open the circuit")
    cooldown_s: float = Field(default=10.0, gt=0, description="how long an open circuit waits before a probe")
    max_retry_after_s: float = Field(
        default=300.0, gt=0, description="cap on the cool-down an upstream 429/503 Retry-After imposes"
    )


class LimitsConfig(_Frozen):
    """Per-deployment RPM/TPM token buckets."""

    max_wait_ms: float = Field(
        default=500.0, ge=0, description="longest a request queues for capacity before the gateway answers 429"
    )
    store: Literal["memory", "redis"] = Field(default="memory", description="redis: shared by every gateway")
    redis_url: SecretRef | None = Field(default=None, description="e.g. ${TOKENOMY_REDIS_URL} (store: redis)")

    _check_secret = field_validator("redis_url", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _url_for_redis(self) -> LimitsConfig:
        if self.store == "redis" and self.redis_url is None:
            raise ValueError("shared rate limits need redis_url, e.g. redis_url: ${TOKENOMY_REDIS_URL}")
        return self


class RoutingConfig(_Frozen):
    """Gateway-wide routing defaults (``routing:``); a model's own ``retries`` override these."""

    retries: RetryConfig = RetryConfig()
    health: HealthConfig = HealthConfig()
    limits: LimitsConfig = LimitsConfig()


class ContextWindowFallback(_Frozen):
    """Send prompts longer than ``max_prompt_tokens`` (counted before sending) to ``model`` instead."""

    model: str = Field(min_length=1)
    max_prompt_tokens: int = Field(gt=0)


def check_model_references(models: Sequence[LogicalModel]) -> None:
    """Fallback names must exist and must not form a cycle; raise ``ValueError`` otherwise."""
    by_name = {name: model for model in models for name in (model.name, *model.aliases)}
    for model in models:
        targets = list(model.fallbacks)
        if model.context_window_fallback is not None:
            targets.append(model.context_window_fallback.model)
        for target in targets:
            if target not in by_name:
                close = difflib.get_close_matches(target, list(by_name), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"model {model.name!r} falls back to {target!r}, which is not a model{hint}")
            if by_name[target] is model:
                raise ValueError(f"model {model.name!r} falls back to itself")
    done: set[str] = set()
    for model in models:
        _walk(model, by_name, (model.name,), done)


def _walk(model: LogicalModel, by_name: dict[str, LogicalModel], path: tuple[str, ...], done: set[str]) -> None:
    """Depth-first search for a cycle through ``fallbacks``; ``done`` holds models already proven acyclic."""
    if model.name in done:
        return
    for target in model.fallbacks:
        nxt = by_name[target]
        if nxt.name in path:
            raise ValueError(f"fallbacks form a cycle: {' -> '.join((*path, nxt.name))}")
        _walk(nxt, by_name, (*path, nxt.name), done)
    done.add(model.name)
