"""Where the semantic tier keeps its entries: the embedded usearch index or PostgreSQL with pgvector.

Both implement :class:`SemanticStore`; the same contract tests run on both
(``tests/cache/semantic/test_store_contract.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.index import Candidate, VectorIndex
from tokenomy.config.cache import SemanticCacheConfig

log = logging.getLogger("tokenomy.cache")


class SemanticStore(Protocol):
    """Entries (vector, context, exact-tier key, text) and the nearest ones in a context; blocking calls."""

    remote: bool
    """True when :meth:`has_context` is a network call (the cache then runs it off the event loop)."""
    dirty: bool

    def __len__(self) -> int: ...
    def has_context(self, context: tuple[int, int]) -> bool: ...
    def search(
        self, vector: npt.NDArray[np.float32], context: tuple[int, int], threshold: float, k: int = 32,
        max_k: int = 2048,
    ) -> list[Candidate]: ...  # fmt: skip
    def stored(self, vector: npt.NDArray[np.float32], context: tuple[int, int], key: str, text: str) -> bool: ...
    def add(self, vector: npt.NDArray[np.float32], context: tuple[int, int], key: str, text: str) -> int: ...
    def add_many(
        self, vectors: npt.NDArray[np.float32], contexts: npt.NDArray[np.uint64], keys: list[str], texts: list[str]
    ) -> None: ...
    def remove(self, key: str) -> int: ...
    def save(self, path: Path) -> None: ...
    def close_log(self) -> None: ...


def open_store(config: SemanticCacheConfig, dim: int) -> SemanticStore:
    """The configured store: the usearch index (with its change log) or the pgvector table."""
    if config.store == "pgvector":
        from tokenomy.cache.semantic.pgvector_store import PgVectorStore

        assert config.postgres_url is not None  # the config model requires it
        url = config.postgres_url.resolve()
        if not url:
            raise ValueError(f"the semantic store's postgres_url variable ${{{config.postgres_url.env}}} is not set")
        return PgVectorStore(url, config.max_entries, dim, config.exact_scan_limit)
    path = config.index_file
    index = VectorIndex.load(path, config.max_entries, dim, config.exact_scan_limit)
    try:
        index.open_log(Path(f"{path}.log"))  # adds since the last save survive a crash
    except (OSError, ValueError) as exc:
        log.warning("semantic index change log not used (%s): entries added after a save are lost on a crash", exc)
    return index
