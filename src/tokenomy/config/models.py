"""Typed, frozen configuration models.

Unknown keys are rejected, secrets are only references to environment variables, and each
model validates the combinations that make no sense (a local deployment with a URL, say).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tokenomy.config import references
from tokenomy.config.base import SecretRef, _Frozen, parse_secret
from tokenomy.config.batches import BatchesConfig
from tokenomy.config.budgets import BudgetsConfig, KeyBudget, KeyStoreConfig
from tokenomy.config.cache import CacheConfig
from tokenomy.config.observability import LedgerConfig, TelemetryConfig
from tokenomy.config.optimize import OptimizeConfig
from tokenomy.config.policy import RouterConfig
from tokenomy.config.responses import ResponsesConfig
from tokenomy.config.routing import ContextWindowFallback, RetryConfig, RoutingConfig, Strategy
from tokenomy.config.shadow import ShadowRule, check_shadow
from tokenomy.providers.base import provider_kinds

__all__ = ["SecretRef", "parse_secret"]


class Pricing(_Frozen):
    """Prices overriding the price database: per million tokens, or a self-hosted cost per hour."""

    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    cache_write_per_mtok: float | None = Field(
        default=None, ge=0, description="prompt-cache writes (Anthropic); default: the input price"
    )
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
    api_version: str | None = Field(
        default=None, description="azure: the api-version of the deployments API; unset: Azure's v1 API"
    )
    region: str | None = Field(default=None, description="bedrock: the AWS region (us-east-1...)")
    entra_id: bool = Field(default=False, description="azure: api_key holds a Microsoft Entra ID token (Bearer)")
    responses_api: Literal["native", "chat"] = Field(
        default="native",
        description="openai deployments: Responses API calls go upstream as they are (native), or as chat "
        "completions (chat: for OpenAI-compatible servers without /responses)",
    )

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
        elif self.provider in ("openai", "anthropic", "azure") and self.base_url is None:
            raise ValueError(f"a {self.provider} deployment needs a base_url")
        elif self.provider == "bedrock" and self.region is None:
            raise ValueError("a bedrock deployment needs a region (e.g. region: us-east-1)")
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

    _check_secret = field_validator("metrics_key", mode="before")(parse_secret)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_in_flight: int = Field(
        default=2048,
        gt=0,
        description="requests in progress (body received) beyond which the gateway answers 503 at once",
    )
    shed_loop_lag_ms: float = Field(
        # quiet-machine runs (docs/benchmarks.md, Overload): at 2x saturation the admitted p99 over no-load
        # was +152 to +422 ms at 20 ms in every run; at 5 ms +32 to +55 with the default controller
        default=5.0,
        ge=0,
        description="the gateway's own queue delay / event-loop lag beyond which the limit on model calls "
        "in progress is lowered (past the limit new ones get 503 at once; 0: off)",
    )
    shed_waited_ms: float = Field(
        default=0.0,
        ge=0,
        description="while that limit is lowered, model calls that waited longer than this in the kernel (listen "
        "queue, socket buffer) before the gateway read them get 503 at once (0, the default: off; the quiet-machine "
        "run did not show it helping)",
    )
    shed_control: Literal["backoff", "gradient", "little"] = Field(
        # quiet-machine runs at 2x saturation with the 5 ms target (docs/benchmarks.md, Overload): admitted p99
        # +32 to +55 ms over no-load in 4 of 4 runs, against +41 to +212 (5 of 8 within 100 ms) for 'backoff'
        default="little",
        description="how the limit on model calls in progress follows the gateway's lateness: 'little' (the "
        "default: down to the calls the gateway completes in its quickest in-progress time plus the target, by "
        "Little's law; docs/security.md, Overload), 'backoff' (0.8x the calls in progress per late 50 ms window) "
        "or 'gradient' (target / lateness, floored at the calls completed in one target period)",
    )
    shed_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="a model call that finds that limit reached waits up to this long, first come first served, "
        "for a call in progress to finish before it gets 503 (0: 503 at once)",
    )
    shed_min_in_flight: int = Field(
        default=8, ge=1, description="lowest the in-progress limit goes (fewer requests than this are never overload)"
    )
    gc_full_pass_every: int = Field(
        default=100,
        ge=1,
        description="the garbage collector's full pass runs at most once per this many middle-generation passes "
        "(Python's own default is 10): a full pass walks every live object, about 60 ms with 4,000 open "
        "connections, and under overload ran about once a second (docs/benchmarks.md, Overload)",
    )
    header_timeout_s: float = Field(default=10.0, gt=0, description="time allowed for a whole request head")
    body_timeout_s: float = Field(default=30.0, gt=0, description="time allowed for a whole request body")
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, description="largest request head (431 beyond)")
    max_headers: int = Field(default=100, ge=8, description="most headers in one request (431 beyond)")
    max_waiting_connections_per_address: int = Field(
        default=1024,
        gt=0,
        description="connections one address may hold before sending a whole request head (trusted proxies exempt)",
    )
    max_pending_per_client: int = Field(
        default=64, gt=0, description="requests one key (or, unauthenticated, one address) may have still arriving"
    )
    max_in_flight_per_client: int | None = Field(
        default=None, gt=0, description="requests in progress allowed to one key or address (none: no cap)"
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(), description="addresses/CIDRs of reverse proxies whose X-Forwarded-For is believed"
    )
    edge_rows_per_s: float = Field(
        default=100.0, ge=0, description="ledger rows per second for requests refused at the edge (all are counted)"
    )
    upstream_connections: int = Field(default=1024, gt=0, description="pooled connections per upstream host")
    upstream_client: Literal["aiohttp", "pyreqwest"] = Field(
        default="aiohttp",
        description="the HTTP client library that calls upstreams (docs/architecture.md, the upstream client)",
    )
    onnx_spinning: Literal["in-run", "never"] = Field(
        default="in-run",
        description="how the threads of the request path's embedded models (the semantic cache's query embedder "
        "and cross-encoder, the learned router's embedder) wait between operators: in-run (spin within a run: "
        "lowest lookup latency) or never (sleep: leaves the core to a saturated event loop); docs/semantic-cache.md",
    )
    metrics_key: SecretRef | None = Field(
        default=None, description="when set, GET /metrics needs this key as a bearer token, e.g. ${METRICS_KEY}"
    )
    max_json_depth: int = Field(
        default=64, ge=2, le=200, description="deepest JSON nesting a request body may have (400 beyond)"
    )
    max_json_nodes: int = Field(
        default=100_000, gt=0, description="most JSON objects, arrays and members in one request body (400 beyond)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(default="text", description="text lines, or one JSON object per line")
    access_log: bool = Field(default=True, description="one log line per finished request (docs/observability.md)")
    shutdown_timeout_s: float = Field(
        default=25.0, ge=0, description="on SIGTERM: how long requests in flight may take before they are cancelled"
    )


class LocalGenerationConfig(_Frozen):
    """The embedded llama.cpp backend."""

    model_path: str | None = Field(default=None, description="a GGUF file; default: SmolLM2-135M-Instruct")
    select_variant: bool = Field(
        default=True,
        description="with the default model: serve the fastest variant that answers known questions on this CPU",
    )
    n_ctx: int = Field(default=2048, gt=0)
    n_threads: int | None = Field(
        default=None, gt=0, description="default: the CPUs this process may use (affinity, cgroup quota)"
    )
    repeat_penalty: float = Field(
        default=1.1, ge=1.0, le=2.0, description="penalty on recently generated tokens (1: off); stops loops"
    )
    loop_guard: bool = Field(default=True, description="end an answer whose tail repeats one short pattern")
    max_queue: int = Field(default=64, ge=0, description="waiting generation requests before 503")
    parallel: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        default="auto",
        description="requests decoded together, one sequence each (1: one at a time); auto: 4 when the "
        "model file is f16, bf16 or f32, else 1 (docs/benchmarks.md)",
    )
    max_tokens_default: int = Field(default=256, gt=0)


class LocalEmbeddingConfig(_Frozen):
    """The embedded ONNX embedding model and its micro-batcher."""

    max_batch_size: int = Field(default=32, gt=0)
    max_wait_ms: float = Field(default=2.0, ge=0)
    max_queue: int = Field(default=4096, gt=0)
    concurrency: int | None = Field(
        default=None, gt=0, description="batches run at once, each on its own thread; default: 1"
    )
    n_threads: int | None = Field(
        default=None, gt=0, description="ONNX Runtime threads per batch; default: usable CPUs / concurrency"
    )
    arithmetic: Literal["float32", "int8"] = Field(
        default="float32",
        description="int8: 8-bit MatMul weights computed in int8, each text on its own (about a third less CPU "
        "alone, a tenth less in batches; cosine to the float32 vectors 0.9997 on average, 0.998 at worst); "
        "see docs/benchmarks.md",
    )
    token_encoding: Literal["cl100k_base", "o200k_base"] | None = Field(
        default=None,
        description="tokenizer of clients' token-array inputs; default: the model name's, else cl100k_base",
    )


class LocalConfig(_Frozen):
    """Settings of the embedded backend (used by ``provider: local`` deployments)."""

    cost_per_hour: float = Field(
        default=0.10,
        ge=0,
        description="USD per hour of the machine the embedded models run on, priced by their measured "
        "tokens/s (default: a small 2-vCPU cloud VM; 0: leave them unpriced)",
    )
    generation: LocalGenerationConfig = LocalGenerationConfig()
    embeddings: LocalEmbeddingConfig = LocalEmbeddingConfig()


class GatewayConfig(_Frozen):
    """The whole configuration file.

    ``models`` is validated first so that the checks of later sections can see the model names;
    every cross-reference problem is reported at once, at its own path (config/references.py).
    """

    models: tuple[LogicalModel, ...] = Field(min_length=1)
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    local: LocalConfig = LocalConfig()
    cache: CacheConfig = CacheConfig()
    optimize: OptimizeConfig = OptimizeConfig()
    ledger: LedgerConfig = LedgerConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    routing: RoutingConfig = RoutingConfig()
    responses: ResponsesConfig = Field(default=ResponsesConfig(), description="Responses API state")
    batches: BatchesConfig = BatchesConfig()
    routers: tuple[RouterConfig, ...] = Field(default=(), description="router models (docs/routing.md)")
    shadow: tuple[ShadowRule, ...] = Field(default=(), description="shadow traffic (docs/evaluation.md)")

    @model_validator(mode="before")
    @classmethod
    def _note_model_names(cls, data: Any, info: ValidationInfo) -> Any:
        """Keep the declared names, so later sections are checked even when a model has an error."""
        if isinstance(info.context, dict) and isinstance(data, dict) and isinstance(data.get("models"), list):
            names = []
            for model in data["models"]:
                if isinstance(model, dict):
                    aliases = model.get("aliases")
                    names += [model.get("name"), *(aliases if isinstance(aliases, list) else [])]
            info.context["model_names"] = [n for n in names if isinstance(n, str)]
        return data

    @field_validator("models")
    @classmethod
    def _model_references(cls, models: tuple[LogicalModel, ...]) -> tuple[LogicalModel, ...]:
        renamed, clashes = references.deployment_names(models)
        references.raise_if(references.model_names(models) + references.fallbacks(models) + clashes)
        if not renamed:
            return models
        return tuple(
            model.model_copy(
                update={
                    "deployments": tuple(
                        dep.model_copy(update={"name": renamed[("models", i, "deployments", j)]})
                        if ("models", i, "deployments", j) in renamed
                        else dep
                        for j, dep in enumerate(model.deployments)
                    )
                }
            )
            for i, model in enumerate(models)
        )

    @field_validator("budgets")
    @classmethod
    def _budget_references(cls, budgets: BudgetsConfig, info: ValidationInfo) -> BudgetsConfig:
        names = _known(info)
        if names is not None:
            references.raise_if(references.downgrades(budgets, info.data.get("auth"), names))
        return budgets

    @field_validator("routers")
    @classmethod
    def _router_references(cls, routers: tuple[RouterConfig, ...], info: ValidationInfo) -> tuple[RouterConfig, ...]:
        names = _known(info)
        if names is not None:
            references.raise_if(references.routers(routers, names))
        return routers

    @field_validator("shadow")
    @classmethod
    def _shadow_references(cls, rules: tuple[ShadowRule, ...], info: ValidationInfo) -> tuple[ShadowRule, ...]:
        names = _known(info)
        routers = info.data.get("routers") or ()
        if names is not None:
            check_shadow(rules, [*names, *(r.name for r in routers)])
        return rules

    @field_validator("optimize")
    @classmethod
    def _optimize_references(cls, optimize: OptimizeConfig, info: ValidationInfo) -> OptimizeConfig:
        names = _known(info)
        if names is not None:
            optimize.check_models(names)
        return optimize

    def model_names(self) -> list[str]:
        """Every name a client may ask for."""
        return _names(self.models)


def _names(models: tuple[LogicalModel, ...]) -> list[str]:
    return [name for model in models for name in (model.name, *model.aliases)]


def _known(info: ValidationInfo) -> list[str] | None:
    """The model names, from the validated models or, when they have errors, as declared."""
    models = info.data.get("models")
    if models is not None:
        return _names(models)
    context = info.context
    return context.get("model_names") if isinstance(context, dict) else None
