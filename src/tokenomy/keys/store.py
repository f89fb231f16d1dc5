"""The key store port: keys created at run time, by SHA-256 hash."""

from __future__ import annotations

from typing import Protocol

from tokenomy.keys.record import KeyRecord


class KeyStoreUnavailable(Exception):
    """The store cannot be reached (requests with stored keys get 503 meanwhile)."""


class KeyStore(Protocol):
    """Keys created through the admin API; implementations store only hashes."""

    description: str

    async def open(self) -> None:
        """Connect (and start any refresh)."""

    async def close(self) -> None:
        """Disconnect."""

    async def lookup(self, digest: str) -> KeyRecord | None:
        """The active key with this SHA-256, or ``None`` (unknown or revoked)."""

    async def add(self, record: KeyRecord, digest: str) -> None:
        """Store a new key."""

    async def list(self, include_revoked: bool = False) -> list[KeyRecord]:
        """Every key, oldest first."""

    async def revoke(self, key_id: str, when: float) -> KeyRecord | None:
        """Mark a key revoked; ``None`` when no such key (revoking twice keeps the first time)."""
