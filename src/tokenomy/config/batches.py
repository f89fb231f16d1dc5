"""Configuration of the OpenAI-compatible Batch API (``/v1/files``, ``/v1/batches``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret


class BatchesConfig(_Frozen):
    """Where batch files and state live, the input limits, and how hard batch work may push."""

    enabled: bool = True
    dir: str | None = Field(
        default=None, description="folder for batch files and the SQLite state; default: data dir/batches"
    )
    store: Literal["sqlite", "postgres"] = Field(
        default="sqlite", description="sqlite: one gateway; postgres: batch state shared by several gateways"
    )
    dsn: SecretRef | None = Field(default=None, description="PostgreSQL connection string (store: postgres)")
    files_dir: str | None = Field(
        default=None,
        description="folder for the files (shared by the gateways with store: postgres); default: dir/files",
    )
    lease_s: float = Field(
        default=30.0, gt=0, description="how long a gateway's hold on a running batch lasts unless renewed"
    )
    max_file_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description="largest upload (OpenAI: 200 MB)")
    max_lines: int = Field(default=50_000, gt=0, description="most requests in one batch file (OpenAI: 50,000)")
    concurrency: int = Field(default=8, gt=0, description="batch requests in flight at once, across all batches")
    yield_to_live: int = Field(
        default=1, ge=0, description="live requests in flight at or beyond which batch work waits (0: never wait)"
    )
    live_quiet_ms: float = Field(
        default=50.0, ge=0, description="batch work starts only after this long without live traffic"
    )
    expiry_s: float = Field(default=24 * 3600, gt=0, description="how long a batch may run before it expires")
    provider_models: tuple[str, ...] = Field(
        default=(),
        description="logical models whose batches go to the provider's own batch API (OpenAI or Anthropic)",
    )
    poll_interval_s: float = Field(default=30.0, gt=0, description="how often a provider batch is polled")
    provider_discount: float = Field(
        default=0.5, ge=0, le=1, description="share of the list price a provider batch saves (OpenAI, Anthropic: 0.5)"
    )

    _check_secret = field_validator("dsn", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> BatchesConfig:
        if self.store == "postgres" and self.dsn is None:
            raise ValueError("a postgres batch store needs a dsn, e.g. dsn: ${TOKENOMY_BATCHES_DSN}")
        return self
