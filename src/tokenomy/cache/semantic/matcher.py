"""The semantic tier as the cache stage calls it: embed, search, filter by context, verify.

A lookup is accepted only when a stored entry has the *same* context fingerprint
(:func:`~tokenomy.cache.semantic.context.conversation_context`), a cosine similarity ≥ the
threshold, and passes the check that ``verify`` names: ``model`` (the default) — hard gates, a
cross-encoder and a learned verifier (:mod:`~tokenomy.cache.semantic.verifier`); ``entities`` —
:func:`~tokenomy.cache.semantic.verify.same_question`; ``none``. When no entry has the context at
all (the common case for a follow-up in a new conversation) the lookup returns at once, without
embedding. If the verifier's model cannot be loaded, the semantic tier turns itself off (one
error line in the log) and the exact tier goes on.

Searches and adds run on one worker thread, never on the event loop (``save``, ``close`` and
``remove`` are blocking: call them off the loop). The vectors of
recent lookups are remembered briefly so that :meth:`SemanticCache.add` after a miss reuses the
lookup's embedding instead of embedding the text again.

**Read-your-writes**: :meth:`SemanticCache.add` registers the entry in a small in-memory *pending*
set before it returns (the cache stage calls it before the response completes); lookups compare
against the pending entries of their context exactly, so the very next request finds an answer
even while its embedding and index insertion are still running in the background.

**Paraphrases in flight** (``coalesce``): a question whose lookup missed and which goes upstream
is registered with :meth:`SemanticCache.fly` until its answer is stored (:meth:`SemanticCache.landed`).
A later lookup in the same context verifies those questions like stored ones; when one is the best
accepted match, the lookup waits for its answer and returns it as the hit, so concurrent
paraphrases share one upstream call. An answer that is not stored makes that lookup a miss.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.index import Candidate, VectorIndex, context_id
from tokenomy.cache.semantic.live import LivePrecision
from tokenomy.cache.semantic.store import SemanticStore, open_store
from tokenomy.cache.semantic.verifier import ModelCheck
from tokenomy.cache.semantic.verify import same_question
from tokenomy.config.cache import DEFAULT_SEMANTIC_THRESHOLD, SemanticCacheConfig
from tokenomy.providers.local.onnx_threads import Spinning
from tokenomy.telemetry import metrics

log = logging.getLogger("tokenomy.cache")

EmbedFn = Callable[[list[str]], Awaitable[npt.NDArray[np.float32]]]
"""Texts -> an array of unit vectors, one row per text."""

DIM = 384
_RECENT = 1024
MAX_PENDING = 4096
"""Entries waiting for the index; past this many, new ones are indexed without read-your-writes."""
PENDING_WAIT_S = 2.0
"""How long a lookup waits for a pending entry's embedding before it skips that entry."""
IN_FLIGHT_WAIT_S = 120.0
"""How long a lookup waits for the answer to a matching question in flight before it misses."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SemanticHit:
    """An accepted match: the exact-tier key of the stored answer, its similarity, the query's vector,
    and the verifier's decision value (``None`` without ``verify: model``)."""

    key: str
    similarity: float
    vector: npt.NDArray[np.float32]
    decision: float | None = None
    waited_ms: float | None = None
    """How long the lookup waited for the answer, when the match was a question in flight."""


@dataclass(eq=False, slots=True)
class _Pending:
    """An entry added but not yet in the index: searchable meanwhile (read-your-writes)."""

    key: str
    text: str
    vector: npt.NDArray[np.float32] | None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False, slots=True)
class InFlight:
    """A question on its way upstream after a miss (see :meth:`SemanticCache.fly`)."""

    ctx: tuple[int, int]
    key: str
    text: str
    vector: npt.NDArray[np.float32] | None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    embedding: asyncio.Task[None] | None = None


async def _nothing() -> None:
    """What :meth:`SemanticCache.add` returns while the tier is off."""


class SemanticCache:
    """Nearest earlier question in the same conversation context (see the module docstring)."""

    def __init__(
        self, config: SemanticCacheConfig, embed: EmbedFn, *, dim: int = DIM, spinning: Spinning | None = None
    ) -> None:
        self._config = config
        self._embed = embed
        self._verify = config.verify == "entities"
        self.live = LivePrecision(config.max_false_hit_rate, path=config.audit_file)
        self.check: ModelCheck | None = None
        if config.verify == "model":
            self.check = ModelCheck(
                Path(config.model_path) if config.model_path else None,
                Path(config.verifier_path) if config.verifier_path else None,
                config.accept,
                config.arithmetic,
                spinning,  # the cross-encoder's ONNX threads (server.onnx_spinning; default in-run)
            )
        self._path = config.index_file
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semantic-index")
        self._recent: OrderedDict[tuple[tuple[int, int], str], npt.NDArray[np.float32]] = OrderedDict()
        self._pending: dict[tuple[int, int], list[_Pending]] = {}
        self._pending_count = 0
        self._flying: dict[tuple[int, int], list[InFlight]] = {}
        self._flying_count = 0
        self._broken: str | None = None
        try:
            self.index: SemanticStore = open_store(config, dim)
        except ValueError as exc:  # e.g. the store's URL variable is unset: the semantic tier is off, not the gateway
            log.error("semantic cache off: %s; the exact tier goes on", exc)
            self._broken = str(exc)
            self.index = VectorIndex(1, dim)  # never searched nor written while off

    @property
    def off(self) -> bool:
        """True when the store could not be opened or the verifier's model failed to load: every lookup misses."""
        return self._broken is not None or (self.check is not None and self.check.failed is not None)

    def _load_check(self) -> bool:
        """Load the verifier's model once (worker thread); log and turn the tier off if it fails."""
        assert self.check is not None
        if self.check.verifier is not None:
            return True
        if self.check.failed is None and not self.check.load():
            log.error("semantic cache off: its verifier model could not be loaded (%s); the exact tier goes on",
                      self.check.failed)  # fmt: skip
        return self.check.failed is None

    async def lookup(
        self, context: str, text: str, threshold: float | None = None, accept: float | None = None, task: str = ""
    ) -> SemanticHit | None:
        """The best acceptable earlier entry for ``text`` in ``context``, or ``None`` (also on errors:
        an embedding model that is overloaded or down makes a miss, never a failed request).

        ``threshold`` is the cosine a candidate needs (default: per ``verify``); ``accept``
        overrides the verifier's decision threshold (``verify: model``), to which the error budget
        adds ``task``'s offset (:mod:`~tokenomy.cache.semantic.live`).
        """
        ctx = context_id(context)
        pending = self._pending.get(ctx)
        flying = None if self.live.suspended(task) else self._flying.get(ctx)  # waiting would only add latency
        if self.off or (not pending and not flying and not self.index.remote and not self.index.has_context(ctx)):
            return None
        if threshold is None:
            threshold = self.check.cosine_floor if self.check is not None else DEFAULT_SEMANTIC_THRESHOLD
        try:
            if not pending and not flying and self.index.remote and not await self._run(self.index.has_context, ctx):
                return None
            if self.check is not None and not await self._run(self._load_check):
                return None
            vector = await self._vector(ctx, text)
            candidates = await self._run(self.index.search, vector, ctx, threshold)
            extra = await self._search_pending(list(pending), vector, threshold) if pending else []
            flights: dict[str, InFlight] = {}
            for flight in flying or ():  # questions on their way upstream (vector None: still embedding)
                similarity = -1.0 if flight.vector is None else float(flight.vector @ vector)
                if similarity >= threshold:
                    flights[flight.key] = flight
                    extra.append(Candidate(-1, similarity, flight.key, flight.text))
            if extra:
                candidates = sorted([*candidates, *extra], key=lambda c: -c.similarity)
            if self.check is not None:
                needed = (self.check.accept if accept is None else accept) + self.live.offset(task)
                return await self._answered(await self._run(self._verified, text, candidates, vector, needed), flights)
        except Exception as exc:  # a cache lookup never fails the request
            log.warning("semantic lookup failed: %s", exc)
            return None
        for candidate in candidates:
            if not self._verify or same_question(text, candidate.text):
                return await self._answered(SemanticHit(candidate.key, candidate.similarity, vector), flights)
        return None

    async def _answered(self, hit: SemanticHit | None, flights: dict[str, InFlight]) -> SemanticHit | None:
        """``hit``, after waiting for its answer when it matched a question still in flight."""
        flight = None if hit is None else flights.get(hit.key)
        if hit is None or flight is None:
            return hit
        started = time.perf_counter()
        try:
            await asyncio.wait_for(flight.done.wait(), IN_FLIGHT_WAIT_S)
        except TimeoutError:
            metrics.child(metrics.SEMANTIC_IN_FLIGHT, "timeout").inc()
            return None
        return replace(hit, waited_ms=(time.perf_counter() - started) * 1000)

    def fly(self, context: str, text: str, key: str) -> InFlight | None:
        """Register a question going upstream after its lookup missed, so that paraphrases arriving
        meanwhile wait for its answer (``coalesce``); call :meth:`landed` once its answer is stored
        or it failed. Its vector is the lookup's, or (a lookup in a context with no entries does not
        embed) computed in the background, and given to :meth:`add` with the answer. ``None``
        (nothing registered) when coalescing is off or too many questions are in flight."""
        if not self._config.coalesce or self.off or self._flying_count >= MAX_PENDING:
            return None
        ctx = context_id(context)
        flight = InFlight(ctx, key, text, self._recent.get((ctx, text)))
        if flight.vector is None:
            flight.embedding = asyncio.get_running_loop().create_task(self._embed_flight(flight))
        self._flying.setdefault(ctx, []).append(flight)
        self._flying_count += 1
        return flight

    async def _embed_flight(self, flight: InFlight) -> None:
        try:
            flight.vector = await self._vector(flight.ctx, flight.text, remember=False)
        except Exception as exc:  # the question is just not matched while in flight
            log.warning("semantic embedding failed: %s", exc)

    def landed(self, flight: InFlight) -> None:
        """The question of :meth:`fly` is answered (and stored, when it could be) or failed: wake its waiters."""
        flight.done.set()
        flights = self._flying.get(flight.ctx)
        if flights is not None and flight in flights:
            flights.remove(flight)
            self._flying_count -= 1
            if not flights:
                del self._flying[flight.ctx]

    def _verified(
        self, text: str, candidates: list[Candidate], vector: npt.NDArray[np.float32], accept: float
    ) -> SemanticHit | None:
        """The candidate with the best decision value, if it reaches the acceptance threshold."""
        assert self.check is not None
        if not candidates:
            return None
        decisions = self.check.decide(text, [(c.text, c.similarity) for c in candidates], accept)
        best = max(range(len(candidates)), key=lambda i: decisions[i])
        if decisions[best] < accept:
            return None
        return SemanticHit(candidates[best].key, candidates[best].similarity, vector, decisions[best])

    def add(
        self, context: str, text: str, key: str, vector: npt.NDArray[np.float32] | None = None
    ) -> Coroutine[object, object, None]:
        """Index the answer stored under the exact-tier ``key`` (embedding ``text`` unless given its vector).

        The entry is searchable as soon as this returns (pending); the returned coroutine embeds
        and indexes it, and must be awaited or run as a task.
        """
        ctx = context_id(context)
        if self._broken is not None:
            return _nothing()
        if vector is None:
            vector = self._recent.pop((ctx, text), None)
        entry: _Pending | None = None
        if self._pending_count < MAX_PENDING:
            entry = _Pending(key, text, None if vector is None else np.asarray(vector, dtype=np.float32))
            if entry.vector is not None:
                entry.ready.set()
            self._pending.setdefault(ctx, []).append(entry)
            self._pending_count += 1
        return self._index_entry(ctx, text, key, vector, entry)

    async def _index_entry(
        self, ctx: tuple[int, int], text: str, key: str, vector: npt.NDArray[np.float32] | None, entry: _Pending | None
    ) -> None:
        try:
            if vector is None:
                vector = await self._vector(ctx, text, remember=False)
                if entry is not None:
                    entry.vector = np.asarray(vector, dtype=np.float32)
            if entry is not None:
                entry.ready.set()
            await self._run(self._add, np.asarray(vector, dtype=np.float32), ctx, key, text)
            if self.check is not None and self.check.verifier is None:
                await self._run(self._load_check)  # loaded before the first lookup needs it
        except ValueError:
            raise  # a malformed key is the caller's bug
        except Exception as exc:  # the answer is still in the exact tier
            log.warning("semantic add failed: %s", exc)
        finally:
            if entry is not None:
                entry.ready.set()
                self._unpend(ctx, entry)

    def _unpend(self, ctx: tuple[int, int], entry: _Pending) -> None:
        entries = self._pending.get(ctx)
        if entries is not None and entry in entries:
            entries.remove(entry)
            self._pending_count -= 1
            if not entries:
                del self._pending[ctx]

    async def _search_pending(
        self, entries: list[_Pending], vector: npt.NDArray[np.float32], threshold: float
    ) -> list[Candidate]:
        """The pending entries at or above ``threshold`` (waiting briefly for embeddings in flight)."""
        out: list[Candidate] = []
        for entry in entries:
            if entry.vector is None:
                try:
                    await asyncio.wait_for(entry.ready.wait(), PENDING_WAIT_S)
                except TimeoutError:
                    continue
            if entry.vector is None:
                continue
            similarity = float(entry.vector @ vector)
            if similarity >= threshold:
                out.append(Candidate(0, similarity, entry.key, entry.text))
        return out

    def _add(self, vector: npt.NDArray[np.float32], ctx: tuple[int, int], key: str, text: str) -> None:
        """Add unless the same text is already stored under the same key in this context."""
        if not self.index.stored(vector, ctx, key, text):
            self.index.add(vector, ctx, key, text)

    async def agree(self, cached: str, fresh: str) -> bool:
        """Whether an audited hit's cached answer says what the fresh upstream answer says
        (identical, or MiniLM cosine of the two answers ≥ ``audit_agreement``)."""
        if cached.strip() == fresh.strip():
            return True
        rows = await self._embed([cached, fresh])
        return float(np.asarray(rows[0]) @ np.asarray(rows[1])) >= self._config.audit_agreement

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
        self.live.save()
        try:
            self.save()
        except OSError as exc:
            log.warning("semantic index not saved to %s: %s", self._path, exc)
        self.index.close_log()

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
