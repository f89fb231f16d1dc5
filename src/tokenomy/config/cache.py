"""Configuration of the cache stage: exact and semantic tiers, their stores and per-task rules."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret
from tokenomy.config.observability import data_dir

# Calibrated on STS-B train with the second check (docs/semantic-cache.md): precision 1.0 on the
# held-out public pair sets at this threshold.
DEFAULT_SEMANTIC_THRESHOLD = 0.90


class ExactCacheConfig(_Frozen):
    """Exact tier: in-process LRU (level 1), then a shared store (level 2)."""

    enabled: bool = True
    memory_bytes: int = Field(default=256 * 1024 * 1024, ge=0, description="level-1 LRU budget in bytes")
    ttl_s: float = Field(default=86_400.0, gt=0, description="how long an answer stays valid")
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0, description="larger answers are not stored")
    max_store_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1024 * 1024,
        description="SQLite level 2: size bound; the entries expiring first are evicted beyond it",
    )
    store: Literal["sqlite", "redis", "none"] = "sqlite"
    path: str | None = Field(default=None, description="SQLite file; default: data dir/cache.db")
    redis_url: SecretRef | None = Field(default=None, description="e.g. ${TOKENOMY_REDIS_URL} (store: redis)")

    _check_secret = field_validator("redis_url", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _url_for_redis(self) -> ExactCacheConfig:
        if self.store == "redis" and self.redis_url is None:
            raise ValueError("a redis cache store needs redis_url, e.g. redis_url: ${TOKENOMY_REDIS_URL}")
        return self

    @property
    def sqlite_path(self) -> Path:
        """The level-2 SQLite file."""
        return Path(self.path).expanduser() if self.path else data_dir() / "cache.db"


class SemanticCacheConfig(_Frozen):
    """Semantic tier: nearest earlier question in the same conversation context (chat only)."""

    enabled: bool = False
    verify: Literal["model", "entities", "none"] = Field(
        default="model",
        description="model: gates + cross-encoder + learned verifier; entities: cosine + word check; none: cosine",
    )
    threshold: float | None = Field(
        default=None, gt=0, le=1,
        description=f"cosine similarity; default {DEFAULT_SEMANTIC_THRESHOLD} (entities, none) or the verifier's "
        "floor, 0.6 (model)",
    )  # fmt: skip
    accept: float | None = Field(
        default=None, description="verify: model — the verifier's decision value a hit needs; default: the shipped one"
    )
    model_path: str | None = Field(default=None, description="cross-encoder ONNX file; default: the shipped one")
    verifier_path: str | None = Field(default=None, description="verifier JSON file; default: the shipped one")
    arithmetic: Literal["auto", "int8", "float32"] = Field(
        default="auto",
        description="the cross-encoder's arithmetic: int8 (as shipped), float32 (same weights; faster "
        "without VNNI), auto (float32 on x86 CPUs without VNNI)",
    )
    embedder_arithmetic: Literal["auto", "int8", "float32"] = Field(
        default="auto",
        description="the query embedder's arithmetic: float32, int8 (8-bit weights, each text's activations "
        "in 8 bits: about 1 ms less per lookup where the CPU has VNNI), auto (int8 on x86 CPUs with VNNI, "
        "unless a learned router is configured, which shares float32 vectors with the semantic tier)",
    )
    store: Literal["usearch", "pgvector"] = Field(
        default="usearch",
        description="usearch: an index file of this gateway; pgvector: PostgreSQL, shared by gateways",
    )
    postgres_url: SecretRef | None = Field(
        default=None, description="store: pgvector — e.g. ${TOKENOMY_SEMANTIC_POSTGRES_URL}"
    )
    index_path: str | None = Field(default=None, description="vector index file; default: data dir/semantic.usearch")
    max_entries: int = Field(default=1_000_000, gt=0)
    exact_scan_limit: int = Field(
        default=32_768,
        ge=0,
        description="a context (conversation prefix) of up to this many entries is scanned exactly when the "
        "graph search finds nothing in it; a larger one is searched by its vectors' sign bits at once, then the "
        "256 nearest exactly (a scan reads every vector: ~56 ms at a million). store: pgvector does the same "
        "through an HNSW index over the sign bits where the server's pgvector is 0.8 or newer",
    )
    coalesce: bool = Field(
        default=True,
        description="a paraphrase of a question on its way upstream waits for that answer instead of asking too "
        "(with single_flight)",
    )
    audit_share: float = Field(
        default=0.0, ge=0, le=1, description="share of semantic hits also answered upstream in the background"
    )
    audit_agreement: float = Field(
        default=0.8, gt=0, le=1, description="answer cosine at which an audited hit counts as right"
    )
    max_false_hit_rate: float = Field(
        default=0.01, gt=0, lt=1, description="error budget per task: audits move the threshold to keep within it"
    )

    _check_secret = field_validator("postgres_url", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _url_for_pgvector(self) -> SemanticCacheConfig:
        if self.store == "pgvector" and self.postgres_url is None:
            raise ValueError("a pgvector semantic store needs postgres_url, e.g. ${TOKENOMY_SEMANTIC_POSTGRES_URL}")
        return self

    @property
    def index_file(self) -> Path:
        """The persisted vector index."""
        return Path(self.index_path).expanduser() if self.index_path else data_dir() / "semantic.usearch"

    @property
    def audit_file(self) -> Path:
        """Where live-precision audit counts are kept for ``tokenomy report`` (beside the index file)."""
        return self.index_file.with_name("semantic-audits.json")


class CacheRule(_Frozen):
    """Overrides for requests of one model and/or task (the first matching rule applies)."""

    model: str | None = None
    task: str | None = None
    enabled: bool | None = Field(default=None, description="false: never cache these")
    nondeterministic: bool | None = Field(default=None, description="true: cache even with temperature > 0")
    ttl_s: float | None = Field(default=None, gt=0)
    semantic: bool | None = None
    semantic_threshold: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _selects(self) -> CacheRule:
        if self.model is None and self.task is None:
            raise ValueError("a cache rule needs a model, a task or both")
        return self


class CacheConfig(_Frozen):
    """The cache stage."""

    exact: ExactCacheConfig = ExactCacheConfig()
    semantic: SemanticCacheConfig = SemanticCacheConfig()
    nondeterministic: bool = Field(
        default=False, description="cache requests with temperature > 0 and no seed (normally each is new)"
    )
    single_flight: bool = Field(default=True, description="identical concurrent requests share one upstream call")
    shared_namespaces: tuple[str, ...] = Field(
        default=(), description="x-tokenomy-cache-namespace values shared by all tenants"
    )
    rules: tuple[CacheRule, ...] = ()

    def rule_for(self, model: str, task: str) -> CacheRule | None:
        """The first rule matching the model and task."""
        for rule in self.rules:
            if (rule.model is None or rule.model == model) and (rule.task is None or rule.task == task):
                return rule
        return None
