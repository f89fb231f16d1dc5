"""Typed, frozen configuration models.

Unknown keys are rejected, secrets are only references to environment variables, and each
model validates the combinations that make no sense (a local deployment with a URL, say).
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret
from tokenomy.config.budgets import BudgetsConfig, KeyBudget, KeyStoreConfig, check_downgrades
from tokenomy.config.cache import CacheConfig
from tokenomy.config.observability import LedgerConfig, TelemetryConfig
from tokenomy.config.policy import RouterConfig, check_routers
from tokenomy.config.routing import ContextWindowFallback, RetryConfig, RoutingConfig, Strategy, check_model_references
from tokenomy.providers.base import provider_kinds

__all__ = ["SecretRef", "parse_secret"]


class Pricing(_Frozen):
    """Prices overriding the price database: per million tokens, or a self-hosted cost per hour."""

    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    cost_per_hour: float | None = Field(
        default=None, ge=0, description="self-hosted: what the machine costs per hour (priced by throughput)"
    )
    throughput_tokens_per_s: float | None = Field(
        default=None, gt=0, description="self-hosted: fixed tokens/s instead of the measured throughput"
    )
    price_model: str | None = Field(default=None, description="the model's name in the price database")

    @model_validator(mode="after")
    def _one_kind(self) -> Pricing:
        per_token = self.input_per_mtok is not None or self.output_per_mtok is not None
        if per_token and self.cost_per_hour is not None:
            raise ValueError("give per-token prices or cost_per_hour, not both")
        if per_token and (self.input_per_mtok is None or self.output_per_mtok is None):
            raise ValueError("per-token pricing needs both input_per_mtok and output_per_mtok")
        if self.throughput_tokens_per_s is not None and self.cost_per_hour is None:
            raise ValueError("throughput_tokens_per_s only applies with cost_per_hour")
        return self


ProviderKind = str  # validated against the provider registry when the gateway starts


class Deployment(_Frozen):
    """One place a logical model can be served: a provider, an endpoint and an upstream model id."""

    provider: ProviderKind
    model: str = Field(min_length=1, description="the upstream's model id (for local: the embedded model)")
    base_url: str | None = None
    api_key: SecretRef | None = None
    name: str | None = Field(default=None, description="label in metrics and logs; defaults to provider/model")
    path: str | None = Field(default=None, description="local 'distilled' model: the student directory")
    pricing: Pricing | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, gt=0, description="share of traffic under the weighted strategy")
    timeout_s: float = Field(default=600.0, gt=0, description="total time allowed for one upstream call")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers sent upstream")
    anthropic_version: str = "2023-06-01"

    _check_secret = field_validator("api_key", mode="before")(parse_secret)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        kinds = provider_kinds()
        if value not in kinds:
            close = difflib.get_close_matches(value, kinds, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown provider {value!r} (known: {', '.join(kinds)}){hint}")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("base_url must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _combination(self) -> Deployment:
        if self.provider == "local":
            if self.base_url is not None or self.api_key is not None:
                raise ValueError("a local deployment runs in process: it takes no base_url or api_key")
        elif self.provider in ("openai", "anthropic") and self.base_url is None:
            raise ValueError(f"a {self.provider} deployment needs a base_url")
        return self

    @property
    def label(self) -> str:
        """A stable name for metrics and logs."""
        return self.name or f"{self.provider}/{self.model}"


class LogicalModel(_Frozen):
    """A model name clients ask for, served by one or more deployments."""

    name: str = Field(min_length=1)
    deployments: tuple[Deployment, ...] = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    strategy: Strategy = Field(default="round-robin", description="how a deployment is chosen (docs/routing.md)")
    fallbacks: tuple[str, ...] = Field(default=(), description="models tried in order when this one fails")
    context_window_fallback: ContextWindowFallback | None = None
    retries: RetryConfig | None = Field(default=None, description="overrides routing.retries for this model")


class VirtualKey(_Frozen):
    """A client API key accepted by the gateway, stored as a SHA-256 hash or an env reference."""

    name: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    key: SecretRef | None = None
    tenant: str | None = None
    models: tuple[str, ...] = Field(default=(), description="models this key may use; empty means all")
    rpm: int | None = Field(default=None, gt=0, description="requests per minute allowed to this key")
    tpm: int | None = Field(default=None, gt=0, description="tokens per minute allowed to this key")
    budget: KeyBudget | None = None

    _check_secret = field_validator("key", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _one_source(self) -> VirtualKey:
        if (self.sha256 is None) == (self.key is None):
            raise ValueError("give exactly one of sha256 (hex digest of the key) or key (an env reference)")
        return self


class AuthConfig(_Frozen):
    """Client authentication; with no keys the gateway is open (the local default)."""

    keys: tuple[VirtualKey, ...] = ()
    admin_key: SecretRef | None = Field(
        default=None, description="master key for admin endpoints, e.g. ${TOKENOMY_ADMIN_KEY}"
    )
    key_store: KeyStoreConfig = KeyStoreConfig()

    _check_secret = field_validator("admin_key", mode="before")(parse_secret)


class ServerConfig(_Frozen):
    """The HTTP edge."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_in_flight: int = Field(
        default=2048, gt=0, description="requests in progress beyond which the gateway answers 503 at once"
    )
    shed_loop_lag_ms: float = Field(
        default=50.0, ge=0, description="event-loop lag beyond which new requests get 503 at once (0: off)"
    )
    upstream_connections: int = Field(default=1024, gt=0, description="pooled connections per upstream host")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class LocalGenerationConfig(_Frozen):
    """The embedded llama.cpp backend."""

    model_path: str | None = Field(default=None, description="a GGUF file; default: SmolLM2-135M-Instruct")
    select_variant: bool = Field(
        default=True,
        description="with the default model: serve the fastest variant that answers known questions on this CPU",
    )
    n_ctx: int = Field(default=2048, gt=0)
    n_threads: int | None = Field(default=None, gt=0)
    max_queue: int = Field(default=64, ge=0, description="waiting generation requests before 503")
    max_tokens_default: int = Field(default=256, gt=0)


class LocalEmbeddingConfig(_Frozen):
    """The embedded ONNX embedding model and its micro-batcher."""

    max_batch_size: int = Field(default=32, gt=0)
    max_wait_ms: float = Field(default=2.0, ge=0)
    max_queue: int = Field(default=4096, gt=0)
    n_threads: int | None = Field(default=None, gt=0)


class LocalConfig(_Frozen):
    """Settings of the embedded backend (used by ``provider: local`` deployments)."""

    generation: LocalGenerationConfig = LocalGenerationConfig()
    embeddings: LocalEmbeddingConfig = LocalEmbeddingConfig()


class GatewayConfig(_Frozen):
    """The whole configuration file."""

    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    local: LocalConfig = LocalConfig()
    cache: CacheConfig = CacheConfig()
    ledger: LedgerConfig = LedgerConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    routing: RoutingConfig = RoutingConfig()
    routers: tuple[RouterConfig, ...] = Field(default=(), description="router models (docs/routing.md)")
    models: tuple[LogicalModel, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        seen: set[str] = set()
        for model in self.models:
            for name in (model.name, *model.aliases):
                if name in seen:
                    raise ValueError(f"model name {name!r} is declared twice")
                seen.add(name)
        keyed = [(f"auth.keys[{i}].budget", k.budget) for i, k in enumerate(self.auth.keys) if k.budget is not None]
        check_downgrades(self.budgets, keyed, self.model_names())
        return self

    @model_validator(mode="after")
    def _routing_references(self) -> GatewayConfig:
        check_model_references(self.models)
        check_routers(self.routers, self.model_names())
        return self

    def model_names(self) -> list[str]:
        """Every name a client may ask for."""
        return [name for model in self.models for name in (model.name, *model.aliases)]
