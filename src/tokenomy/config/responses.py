"""Configuration of the Responses API state: where stored responses live and for how long."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret
from tokenomy.config.observability import data_dir


class ResponsesConfig(_Frozen):
    """Stored responses (``store: true``), so ``previous_response_id`` and retrieval work."""

    store: Literal["sqlite", "postgres", "redis", "none"] = Field(
        default="sqlite", description="sqlite: this machine; postgres, redis: shared by gateways; none: nothing kept"
    )
    path: str | None = Field(default=None, description="SQLite file; default: data dir/responses.db")
    redis_url: SecretRef | None = Field(default=None, description="e.g. ${TOKENOMY_REDIS_URL} (store: redis)")
    dsn: SecretRef | None = Field(default=None, description="PostgreSQL connection string (store: postgres)")
    retention_s: float = Field(default=30 * 86_400.0, gt=0, description="how long a stored response is kept")

    _check_secret = field_validator("redis_url", "dsn", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _url_for_store(self) -> ResponsesConfig:
        if self.store == "redis" and self.redis_url is None:
            raise ValueError("a redis response store needs redis_url, e.g. redis_url: ${TOKENOMY_REDIS_URL}")
        if self.store == "postgres" and self.dsn is None:
            raise ValueError("a postgres response store needs a dsn, e.g. dsn: ${TOKENOMY_RESPONSES_DSN}")
        return self

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file."""
        return Path(self.path).expanduser() if self.path else data_dir() / "responses.db"
