"""The semantic tier as the cache stage calls it: embed, search, filter by context, verify.

A lookup is accepted only when a stored entry has the *same* context fingerprint
(:func:`~tokenomy.cache.semantic.context.conversation_context`), a cosine similarity ≥ the
threshold, and — with ``verify: entities`` — passes :func:`~tokenomy.cache.semantic.verify.same_question`.
When no entry has the context at all (the common case for a follow-up in a new conversation)
the lookup returns at once, without embedding.

Searches and adds run on one worker thread, never on the event loop (``save``, ``close`` and
``remove`` are blocking: call them off the loop). The vectors of
recent lookups are remembered briefly so that :meth:`SemanticCache.add` after a miss reuses the
lookup's embedding instead of embedding the text again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.index import VectorIndex, context_id
from tokenomy.cache.semantic.verify import same_question
from tokenomy.config.cache import SemanticCacheConfig

log = logging.getLogger("tokenomy.cache")

EmbedFn = Callable[[list[str]], Awaitable[npt.NDArray[np.float32]]]
"""Texts -> an array of unit vectors, one row per text."""

DIM = 384
_RECENT = 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SemanticHit:
    """An accepted match: the exact-tier key of the stored answer, its similarity, the query's vector."""

    key: str
    similarity: float
    vector: npt.NDArray[np.float32]


class SemanticCache:
    """Nearest earlier question in the same conversation context (see the module docstring)."""

    def __init__(self, config: SemanticCacheConfig, embed: EmbedFn, *, dim: int = DIM) -> None:
        self._config = config
        self._embed = embed
        self._verify = config.verify == "entities"
        self._path = config.index_file
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semantic-index")
        self._recent: OrderedDict[tuple[tuple[int, int], str], npt.NDArray[np.float32]] = OrderedDict()
        self.index = VectorIndex.load(self._path, config.max_entries, dim)

    async def lookup(self, context: str, text: str, threshold: float) -> SemanticHit | None:
        """The best acceptable earlier entry for ``text`` in ``context``, or ``None`` (also on errors:
        an embedding model that is overloaded or down makes a miss, never a failed request)."""
        ctx = context_id(context)
        if not self.index.has_context(ctx):
            return None
        try:
            vector = await self._vector(ctx, text)
            candidates = await self._run(self.index.search, vector, ctx, threshold)
        except Exception as exc:  # a cache lookup never fails the request
            log.warning("semantic lookup failed: %s", exc)
            return None
        for candidate in candidates:
            if not self._verify or same_question(text, candidate.text):
                return SemanticHit(candidate.key, candidate.similarity, vector)
        return None

    async def add(self, context: str, text: str, key: str, vector: npt.NDArray[np.float32] | None = None) -> None:
        """Index the answer stored under the exact-tier ``key`` (embedding ``text`` unless given its vector)."""
        ctx = context_id(context)
        if vector is None:
            vector = self._recent.pop((ctx, text), None)
        try:
            if vector is None:
                vector = await self._vector(ctx, text, remember=False)
            await self._run(self._add, np.asarray(vector, dtype=np.float32), ctx, key, text)
        except ValueError:
            raise  # a malformed key is the caller's bug
        except Exception as exc:  # the answer is still in the exact tier
            log.warning("semantic add failed: %s", exc)

    def _add(self, vector: npt.NDArray[np.float32], ctx: tuple[int, int], key: str, text: str) -> None:
        """Add unless the same text is already stored under the same key in this context."""
        for candidate in self.index.search(vector, ctx, 0.999, k=4, max_k=4):
            if candidate.key == key and candidate.text == text:
                return
        self.index.add(vector, ctx, key, text)

    def remove(self, key: str) -> None:
        """Forget the entries stored under ``key`` (blocking: a scan of the entries, ~ms per million)."""
        self.index.remove(key)

    def save(self) -> None:
        """Persist the index (blocking; searches go on meanwhile, adds wait)."""
        if self.index.dirty:
            self.index.save(self._path)

    def close(self) -> None:
        """Save and stop the worker thread."""
        self._executor.shutdown(wait=True)
        try:
            self.save()
        except OSError as exc:
            log.warning("semantic index not saved to %s: %s", self._path, exc)

    async def _vector(self, ctx: tuple[int, int], text: str, *, remember: bool = True) -> npt.NDArray[np.float32]:
        rows = await self._embed([text])
        vector = np.asarray(rows[0], dtype=np.float32)
        if remember:
            self._recent[(ctx, text)] = vector
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        return vector

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))
