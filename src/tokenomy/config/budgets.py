"""Configuration of budgets, per-key rate limits and the store of keys created at run time.

See docs/keys-and-budgets.md for the semantics (periods, reservation, hard and soft budgets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tokenomy.config.base import SecretRef, _Frozen, parse_secret
from tokenomy.config.observability import data_dir

BudgetAction = Literal["hard", "soft"]
BudgetScope = Literal["key", "team", "task"]


class KeyBudget(_Frozen):
    """USD a key (or a team or task, see :class:`BudgetRule`) may spend per UTC day and/or month."""

    usd_per_day: float | None = Field(default=None, gt=0)
    usd_per_month: float | None = Field(default=None, gt=0)
    action: BudgetAction = Field(default="hard", description="hard: 429 budget_exceeded; soft: downgrade_to")
    downgrade_to: str | None = Field(default=None, description="soft: the cheaper model served once over budget")

    @model_validator(mode="after")
    def _consistent(self) -> KeyBudget:
        if self.usd_per_day is None and self.usd_per_month is None:
            raise ValueError("a budget needs usd_per_day, usd_per_month or both")
        if self.action == "soft" and not self.downgrade_to:
            raise ValueError("a soft budget needs downgrade_to (the cheaper model to serve once over budget)")
        if self.action == "hard" and self.downgrade_to:
            raise ValueError("downgrade_to only applies to soft budgets (action: soft)")
        return self


class BudgetRule(KeyBudget):
    """A budget for a key, a team or a task; ``name: "*"`` gives each one its own budget."""

    scope: BudgetScope
    name: str = Field(min_length=1, description="the key's name, the team or the task tag; * for each")


class BudgetsConfig(_Frozen):
    """Budgets and per-key RPM/TPM limits: their rules and where the counters live."""

    store: Literal["memory", "redis"] = Field(
        default="memory", description="memory: this process only; redis: shared by every gateway"
    )
    redis_url: SecretRef | None = Field(default=None, description="e.g. ${TOKENOMY_REDIS_URL} (store: redis)")
    default_max_tokens: int = Field(
        default=1024, gt=0, description="completion tokens reserved for a request that gives no max_tokens"
    )
    reservation_ttl_s: float = Field(
        default=900.0, gt=0, description="a reservation never settled (gateway died, stream unread) ends after this"
    )
    rules: tuple[BudgetRule, ...] = ()
    max_wildcard_subjects: int = Field(
        default=1000,
        gt=0,
        description='a "*" rule counts this many keys/teams/tasks apart; later ones share one "other" budget',
    )

    _check_secret = field_validator("redis_url", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _url_for_redis(self) -> BudgetsConfig:
        if self.store == "redis" and self.redis_url is None:
            raise ValueError("a redis budget store needs redis_url, e.g. redis_url: ${TOKENOMY_REDIS_URL}")
        return self


class KeyStoreConfig(_Frozen):
    """Where keys created through the admin API live (only with ``auth.admin_key``)."""

    store: Literal["sqlite", "redis"] = "sqlite"
    path: str | None = Field(default=None, description="SQLite file; default: data dir/keys.db")
    redis_url: SecretRef | None = Field(default=None, description="e.g. ${TOKENOMY_REDIS_URL} (store: redis)")
    refresh_s: float = Field(
        default=2.0, gt=0, description="sqlite: how soon keys created or revoked by another process apply here"
    )

    _check_secret = field_validator("redis_url", mode="before")(parse_secret)

    @model_validator(mode="after")
    def _url_for_redis(self) -> KeyStoreConfig:
        if self.store == "redis" and self.redis_url is None:
            raise ValueError("a redis key store needs redis_url, e.g. redis_url: ${TOKENOMY_REDIS_URL}")
        return self

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file's path."""
        return Path(self.path).expanduser() if self.path else data_dir() / "keys.db"
