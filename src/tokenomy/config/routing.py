"""Configuration of balancing, passive health, rate limits, retries and fallbacks (see docs/routing.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret

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
