"""The level-2 cache store port: shared, persistent bytes by key, with metadata for invalidation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class CacheUnavailable(Exception):
    """The store cannot be reached now (the cache serves from level 1 and the upstream meanwhile)."""


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """What invalidation filters on; stored beside the value."""

    namespace: str
    model: str
    task: str
    expires: float  # epoch seconds


class CacheStore(Protocol):
    """A level-2 store (SQLite in process, or Redis shared by several gateways).

    Values are opaque bytes (see ``cache/entry.py``). Implementations raise
    :class:`CacheUnavailable` when the backend is down; every other failure is a bug.
    """

    name: str

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when absent or expired."""

    async def set(self, key: str, value: bytes, meta: EntryMeta) -> None:
        """Store (or replace) a value until ``meta.expires``."""

    async def delete(self, key: str) -> None:
        """Remove one key (no error if absent)."""

    async def invalidate(self, *, namespace: str | None, model: str | None, task: str | None) -> int:
        """Remove every entry matching all the given filters (``None``: any); returns how many."""

    async def close(self) -> None:
        """Release connections and threads."""
