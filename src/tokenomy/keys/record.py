"""One virtual key as the gateway sees it, whichever its source (config file or key store)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from tokenomy.config.budgets import KeyBudget
from tokenomy.config.models import VirtualKey

KEY_PREFIX = "tk-"


def hash_key(key: str) -> str:
    """The hex SHA-256 of a client key (the only form in which keys are stored)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret() -> str:
    """A fresh client key: ``tk-`` and 43 URL-safe random characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_id() -> str:
    """A key's public id (used to list and revoke it; never enough to authenticate)."""
    return "key_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key's name, team, limits and budget; ``source`` is ``config`` or ``store``."""

    id: str
    name: str
    team: str | None = None
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget: KeyBudget | None = None
    created: float = 0.0
    revoked: float | None = None
    hint: str = ""  # the first characters of the key, to recognize it in listings
    source: str = "store"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        """The tenant (team) the key's requests are recorded under."""
        return self.team or self.name

    @property
    def limited(self) -> bool:
        """Whether the key has a rate limit or a budget of its own."""
        return self.rpm is not None or self.tpm is not None or self.budget is not None

    def public(self) -> dict[str, Any]:
        """The key as the admin API shows it (never its hash)."""
        return {
            "id": self.id,
            "object": "key",
            "name": self.name,
            "team": self.team,
            "models": list(self.models),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget": None if self.budget is None else self.budget.model_dump(exclude_none=True),
            "created": int(self.created),
            "revoked": None if self.revoked is None else int(self.revoked),
            "hint": self.hint,
            "source": self.source,
        }

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready form for the stores (``from_row`` reads it back)."""
        row = self.public()
        row["created"], row["revoked"] = self.created, self.revoked
        del row["object"], row["source"]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> KeyRecord:
        """Read what ``to_row`` wrote."""
        budget = row.get("budget")
        return cls(
            id=row["id"],
            name=row["name"],
            team=row.get("team"),
            models=tuple(row.get("models") or ()),
            rpm=row.get("rpm"),
            tpm=row.get("tpm"),
            budget=None if budget is None else KeyBudget.model_validate(budget),
            created=float(row.get("created") or 0.0),
            revoked=row.get("revoked"),
            hint=row.get("hint", ""),
        )

    @classmethod
    def from_config(cls, vkey: VirtualKey) -> KeyRecord:
        """A key declared in the config file."""
        return cls(
            id=f"config:{vkey.name}",
            name=vkey.name,
            team=vkey.tenant,
            models=vkey.models,
            rpm=vkey.rpm,
            tpm=vkey.tpm,
            budget=vkey.budget,
            source="config",
        )
