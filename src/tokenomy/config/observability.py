"""Configuration of the usage ledger, metrics labels and tracing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret


def data_dir() -> Path:
    """Where Tokenomy keeps its files unless told otherwise: ``$TOKENOMY_HOME`` or ~/.local/share/tokenomy."""
    return Path(os.environ.get("TOKENOMY_HOME") or "~/.local/share/tokenomy").expanduser()


class LedgerConfig(_Frozen):
    """Where usage records go and how they are written (see docs/ledger.md)."""

    enabled: bool = Field(default=True, description="off: no records, and no token/cost metrics either")
    store: Literal["sqlite", "postgres", "none"] = "sqlite"
    path: str | None = Field(default=None, description="the SQLite file (store: sqlite); default: data dir/ledger.db")
    dsn: SecretRef | None = Field(default=None, description="PostgreSQL connection string (store: postgres)")
    spool_path: str | None = Field(
        default=None, description="append-only file for records the store cannot take now; default: beside path"
    )
    batch_size: int = Field(default=1000, gt=0, description="records per write")
    flush_interval_ms: float = Field(default=200.0, gt=0, description="longest a record waits in memory")
    max_queue: int = Field(default=50_000, gt=0, description="records held in memory before spilling to the spool")
    retry_interval_s: float = Field(default=1.0, gt=0, description="first wait before retrying an unavailable store")
    store_prompts: bool = Field(default=False, description="keep the prompt text (reports show it only when asked)")
    writer: Literal["process", "thread"] = Field(
        default="process",
        description="process: records (and level-2 cache writes) go to a separate writer process; "
        "thread: a writer thread inside the gateway process",
    )

    _check_secret = field_validator("dsn", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> LedgerConfig:
        if self.store == "postgres" and self.dsn is None:
            raise ValueError("a postgres ledger needs a dsn, e.g. dsn: ${TOKENOMY_LEDGER_DSN}")
        return self

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file's path."""
        return Path(self.path).expanduser() if self.path else data_dir() / "ledger.db"

    @property
    def spool(self) -> Path:
        """The spool file's path."""
        return Path(self.spool_path).expanduser() if self.spool_path else Path(f"{self.sqlite_path}.spool")


class TracingConfig(_Frozen):
    """OpenTelemetry traces (GenAI semantic conventions), exported over OTLP/HTTP; off by default."""

    enabled: bool = False
    otlp_endpoint: str = Field(default="http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces URL")
    service_name: str = "tokenomy"
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers for the exporter")


class TelemetryConfig(_Frozen):
    """Metrics label bounds and tracing."""

    max_task_labels: int = Field(
        default=50, ge=1, description="distinct task tags kept as metric labels; later ones fold into 'other'"
    )
    tracing: TracingConfig = TracingConfig()
