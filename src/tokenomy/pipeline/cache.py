"""The ``cache`` stage: answer from an earlier response whenever one is valid for this request.

Order of business for chat and completions: decide whether the request may use the cache (a
deterministic request, or a rule that widens that; the client's ``Cache-Control``), look it up
(exact tier, then the semantic tier for chat), then join an identical request already in flight
(single-flight), and only then call the next stage, storing its answer on the way back.
Embeddings are cached per input item (``cache/embeddings.py``). Answers never cross namespaces:
the namespace is the tenant, unless the client names a namespace the config declares shared.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

import orjson

from tokenomy.cache import control
from tokenomy.cache.embeddings import EmbeddingsCache
from tokenomy.cache.entry import CacheEntry
from tokenomy.cache.key import deterministic, exact_key
from tokenomy.cache.replay import Assembler, replay
from tokenomy.cache.service import CacheService
from tokenomy.cache.single_flight import PRIVATE, Flight, Flights, LeaderGone
from tokenomy.config.cache import CacheConfig
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import PASSTHROUGH, CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.pipeline.route import ModelTable
from tokenomy.telemetry import metrics


class SemanticTier(Protocol):
    """The semantic cache as this stage uses it (``cache/semantic``)."""

    async def lookup(self, context: str, text: str, threshold: float | None, *, task: str = "") -> Any:
        """A hit with ``key``, ``similarity`` and ``vector``, or ``None``."""

    async def agree(self, cached: str, fresh: str) -> bool:
        """Whether an audited hit's cached answer agrees with the fresh one."""

    @property
    def live(self) -> Any:
        """The live-precision estimator (``record(task, false_hit)``, ``suspended(task)``)."""

    def add(self, context: str, text: str, key: str, vector: Any = None) -> Coroutine[Any, Any, None]:
        """Make an answer stored under ``key`` findable at once; the coroutine indexes it."""

    def fly(self, context: str, text: str, key: str) -> Any:
        """Register a question going upstream after a miss (or ``None``); paraphrases may wait for it."""

    def landed(self, flight: Any) -> None:
        """The question of :meth:`fly` is answered and stored, or failed."""


log = logging.getLogger("tokenomy.cache")

ContextFn = Any  # (namespace, model, body) -> (context fingerprint, last user text) | None
MAX_SHADOW_AUDITS = 4
"""Shadow audits (of a suspended task's would-be hits) running at once; more are skipped, so a busy
suspended task cannot spend the gateway's CPU on comparing answers (each embeds two answers)."""


class CacheStage:
    """Exact and semantic lookups, single-flight, and storing answers."""

    name = "cache"

    def __init__(
        self,
        config: CacheConfig,
        service: CacheService,
        table: ModelTable,
        semantic: SemanticTier | None = None,
        context_fn: ContextFn | None = None,
    ) -> None:
        self._config = config
        self._service = service
        self._table = table
        self._semantic = semantic
        self._context_fn = context_fn
        self._flights = Flights()
        self._ttl = config.exact.ttl_s
        self._max_bytes = config.exact.max_entry_bytes
        self._shared = frozenset(config.shared_namespaces)
        self.embeddings = EmbeddingsCache(service, self._ttl, self._max_bytes)
        self.audit_handler: Handler | None = None  # the gateway's whole chain, for audits of semantic hits
        self.shadow_audits = 0  # running now (MAX_SHADOW_AUDITS at most)

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        model = self._table.resolve(ctx.model)  # unknown models fail here, as they would in route
        if ctx.endpoint in PASSTHROUGH:  # images, audio, moderations, rerank: never cached
            ctx.cache = "bypass"
            return await call_next(ctx)
        rule = self._config.rule_for(model.name, ctx.task)
        endpoint = ctx.endpoint.value
        wanted = self._config.exact.enabled if rule is None or rule.enabled is None else rule.enabled
        loose = (
            self._config.nondeterministic if rule is None or rule.nondeterministic is None else rule.nondeterministic
        )
        if not wanted or not (loose or deterministic(endpoint, ctx.body)) or ctx.body.get("n", 1) not in (1, None):
            ctx.cache = "bypass"
            return await call_next(ctx)
        directives = control.parse(ctx.headers)
        namespace = self._namespace(ctx, directives)
        ttl = rule.ttl_s if rule is not None and rule.ttl_s is not None else self._ttl
        if ctx.endpoint is Endpoint.EMBEDDINGS:
            return await self.embeddings.handle(ctx, call_next, namespace, model, directives, ttl)
        native = ctx.native
        # Requests that may be answered natively (Responses, Messages) key on their own body and
        # wire: their answers may come back in that wire's shape, and fields the chat translation
        # leaves out (thinking, cache_control...) can change the answer.
        key = (
            exact_key(namespace, endpoint, model.name, ctx.body)
            if native is None
            else exact_key(namespace, f"{endpoint}@{native.wire}", model.name, native.body)
        )
        semantic = None
        flight: Flight = PRIVATE  # private unless shared below
        if directives.lookup:  # no-cache skips the lookup and coalescing, and still stores the answer
            started = time.perf_counter()
            entry, tier = await self._service.get(key, directives.max_age)
            if entry is not None:
                metrics.child(metrics.CACHE_LOOKUP_SECONDS, tier).observe(time.perf_counter() - started)
                return self._hit(ctx, entry, "hit-exact", model)
            alone = False  # an identical request in flight went away: call upstream on our own
            if self._config.single_flight and key in self._flights:  # no semantic lookup needed
                try:
                    return await self._follow(ctx, self._flights.join(key)[0], model)
                except LeaderGone:
                    alone = True
            semantic = await self._semantic_lookup(ctx, namespace, model.name, rule, directives)
            if semantic is not None and semantic[0] is not None:
                metrics.child(metrics.CACHE_LOOKUP_SECONDS, "semantic").observe(time.perf_counter() - started)
                self._maybe_audit(ctx, semantic[0], call_next)
                return self._hit(ctx, semantic[0], "hit-semantic", model)
            metrics.child(metrics.CACHE_LOOKUP_SECONDS, "miss").observe(time.perf_counter() - started)
            if self._config.single_flight and not alone:
                flight, leader = self._flights.join(key)
                if not leader:
                    try:
                        return await self._follow(ctx, flight, model)
                    except LeaderGone:
                        flight = PRIVATE  # the leader's client went away: try once on our own
        ctx.cache = "miss"
        store = _Store(self, key, namespace, model.name, ctx, ttl, directives.store, semantic)
        if flight is not PRIVATE and directives.store:  # paraphrases arriving meanwhile wait for this answer
            store.fly()
        try:
            response = await call_next(ctx)
        except BaseException as exc:
            flight.fail(exc)
            self._flights.land(key, flight)
            store.landed()
            raise
        if isinstance(response, Completion):
            flight.resolve(response)
            self._flights.land(key, flight)
            try:
                store.completion(response)
            finally:  # paraphrases waiting for this answer must never be left waiting
                store.landed()
            return response
        flight.start_stream()
        return Stream(self._lead_stream(key, flight, response, store), response.aclose)

    # -- lookups ---------------------------------------------------------------------------

    def _namespace(self, ctx: CallContext, directives: control.Directives) -> str:
        if directives.namespace and directives.namespace in self._shared:
            return f"shared/{directives.namespace}"
        return f"t/{ctx.tenant}/{directives.namespace}"

    async def _semantic_lookup(
        self, ctx: CallContext, namespace: str, model: str, rule: Any, directives: control.Directives
    ) -> tuple[CacheEntry | None, Any, str, str, CacheEntry | None] | None:
        """``(entry to serve, hit, context, text, shadow)``; ``shadow`` is the entry a hit found while
        the task's hits are suspended by its error budget: not served, compared with the fresh answer."""
        enabled = self._config.semantic.enabled if rule is None or rule.semantic is None else rule.semantic
        if self._semantic is None or self._context_fn is None or not enabled or ctx.endpoint is not Endpoint.CHAT:
            return None
        scope = namespace if ctx.native is None else f"{namespace}@{ctx.native.wire}"  # see the exact key
        found = self._context_fn(scope, model, ctx.body)
        if found is None:
            return None
        context, text = found
        threshold = (
            rule.semantic_threshold
            if rule is not None and rule.semantic_threshold is not None
            else self._config.semantic.threshold
        )
        hit = await self._semantic.lookup(context, text, threshold, task=ctx.task)
        if hit is None:
            metrics.child(metrics.CACHE_LOOKUPS, "semantic", "miss").inc()
            return None, None, context, text, None
        entry, _tier = await self._service.get(hit.key, directives.max_age)
        if hit.waited_ms is not None:  # the match was a question in flight: its answer is stored, or not
            metrics.child(metrics.SEMANTIC_IN_FLIGHT, "missed" if entry is None else "served").inc()
            ctx.decisions["cache_waited_ms"] = round(hit.waited_ms)
        if entry is None:
            metrics.child(metrics.CACHE_LOOKUPS, "semantic", "miss").inc()
            return None, hit, context, text, None
        if self._semantic.live.suspended(ctx.task):  # answered upstream; the answer is a free audit
            metrics.child(metrics.CACHE_LOOKUPS, "semantic", "suspended").inc()
            ctx.decisions["semantic_suspended"] = True
            return None, hit, context, text, entry
        metrics.child(metrics.CACHE_LOOKUPS, "semantic", "hit").inc()
        ctx.decisions["cache_similarity"] = round(float(hit.similarity), 4)
        return entry, hit, context, text, None

    def _maybe_audit(self, ctx: CallContext, entry: CacheEntry, call_next: Handler) -> None:
        """Send a share of semantic hits upstream too, in the background (live precision)."""
        share = self._config.semantic.audit_share
        if self._semantic is None or share <= 0 or random.random() >= share:
            return
        body = {k: v for k, v in ctx.body.items() if k not in ("stream", "stream_options")}
        audit = CallContext(
            f"{ctx.request_id}-audit", ctx.endpoint, body, ctx.model,
            headers={**ctx.headers, "cache-control": "no-cache, no-store"}, wire=ctx.wire, tenant=ctx.tenant,
            api_key_name=ctx.api_key_name, task=ctx.task,
        )  # fmt: skip
        audit.decisions["semantic_audit_of"] = ctx.request_id
        handler = self.audit_handler or call_next  # the whole chain when set: the audit is billed and recorded
        self._service.background(self._audit(audit, entry, handler))

    async def _audit(self, audit: CallContext, entry: CacheEntry, handler: Handler) -> None:
        try:
            response = await handler(audit)
            if isinstance(response, Completion):
                await self._judge(audit.task, entry, response.body)
        except Exception as exc:  # an audit never affects a request
            log.warning("semantic hit audit failed: %s", exc)

    def shadow_audit(self, task: str, entry: CacheEntry, fresh: dict[str, Any]) -> None:
        """Compare, in the background, an answer with the entry a suspended semantic hit would have
        served (skipped while :data:`MAX_SHADOW_AUDITS` are running)."""
        if self._semantic is None or self.shadow_audits >= MAX_SHADOW_AUDITS:
            metrics.child(metrics.CACHE_LOOKUPS, "semantic", "shadow_skipped").inc()
            return
        self.shadow_audits += 1
        self._service.background(self._shadow_audit(task, entry, fresh))

    async def _shadow_audit(self, task: str, entry: CacheEntry, fresh: dict[str, Any]) -> None:
        try:
            await self._judge(task, entry, fresh)
        except Exception as exc:  # an audit never affects a request
            log.warning("semantic shadow audit failed: %s", exc)
        finally:
            self.shadow_audits -= 1

    async def _judge(self, task: str, entry: CacheEntry, fresh_body: dict[str, Any]) -> None:
        """Record whether the cached ``entry`` says what the fresh answer says (live precision)."""
        assert self._semantic is not None
        cached, fresh = _answer_text(orjson.loads(entry.body)), _answer_text(fresh_body)
        if cached is not None and fresh is not None:
            self._semantic.live.record(task, not await self._semantic.agree(cached, fresh))

    def _hit(self, ctx: CallContext, entry: CacheEntry, outcome: str, model: Any) -> Response:
        ctx.cache = outcome
        ctx.logical_model = model
        ctx.served_model = model.name
        ctx.baseline_deployment = model.deployments[0]  # what answering it again would have used
        ctx.route = "cache"
        ctx.usage = Usage(entry.prompt_tokens, entry.completion_tokens, entry.cached_tokens, entry.reasoning_tokens)
        body = orjson.loads(entry.body)
        if ctx.stream:
            return Stream(replay(body, ctx.endpoint.value))
        return Completion(body, ctx.usage, entry.body)

    async def _follow(self, ctx: CallContext, flight: Flight, model: Any) -> Response:
        await flight.wait()
        ctx.cache = "coalesced"
        ctx.logical_model = model
        ctx.served_model = model.name
        ctx.baseline_deployment = model.deployments[0]
        ctx.route = "coalesced"
        if flight.completion is not None:
            completion = flight.completion
            ctx.usage = completion.usage or Usage.from_openai(completion.body.get("usage"))
            if ctx.stream:
                return Stream(replay(completion.body, ctx.endpoint.value))
            return Completion(completion.body, ctx.usage, completion.raw)
        if ctx.stream:
            return Stream(flight.follow())
        assembler = Assembler(ctx.endpoint.value)
        async for chunk in flight.follow():
            assembler.add(chunk)
        body = assembler.body()
        ctx.usage = Usage.from_openai(body.get("usage"))
        return Completion(body, ctx.usage)

    async def _lead_stream(
        self, key: str, flight: Flight, response: Stream, store: _Store
    ) -> AsyncIterator[dict[str, Any]]:
        assembler = Assembler(store.ctx.endpoint.value)
        error: BaseException | None = None
        shared = flight is not PRIVATE  # a private flight's push does nothing: skip its await per chunk
        try:
            async for chunk in response.chunks:
                assembler.add(chunk)
                if shared:
                    await flight.push(chunk)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                self._flights.land(key, flight)
                await flight.end(error if error is not None else (None if assembler.complete else LeaderGone("cut")))
                if error is None and assembler.complete:
                    store.body(assembler.body())
                else:
                    metrics.child(metrics.CACHE_SKIPPED, "incomplete").inc()
            finally:  # even when cancelled while waking followers: no paraphrase is left waiting
                store.landed()


def _answer_text(body: dict[str, Any]) -> str | None:
    """The first choice's text of a chat completion body."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None


class _Store:
    """Store an answer on the way back (when allowed, complete, successful and small enough)."""

    def __init__(
        self,
        stage: CacheStage,
        key: str,
        namespace: str,
        model: str,
        ctx: CallContext,
        ttl: float,
        allowed: bool,
        semantic: Any,
    ) -> None:
        self.stage, self.key, self.namespace, self.model = stage, key, namespace, model
        self.ctx, self.ttl, self.allowed, self.semantic = ctx, ttl, allowed, semantic
        self._flying: Any = None

    def fly(self) -> None:
        """After a semantic miss, make this question one that paraphrases may wait for (:meth:`landed`)."""
        tier, semantic = self.stage._semantic, self.semantic
        if tier is not None and semantic is not None and semantic[1] is None:
            self._flying = tier.fly(semantic[2], semantic[3], self.key)

    def landed(self) -> None:
        """The answer is stored (or will not be): wake the paraphrases waiting for it."""
        if self._flying is not None and self.stage._semantic is not None:
            self.stage._semantic.landed(self._flying)
            self._flying = None

    def completion(self, response: Completion) -> None:
        self._shadow(response.body)
        if self.allowed:
            self._put(response.raw or orjson.dumps(response.body), response.usage, response.body)

    def body(self, body: dict[str, Any]) -> None:
        self._shadow(body)
        if self.allowed:
            self._put(orjson.dumps(body), Usage.from_openai(body.get("usage")), body)

    def _shadow(self, body: dict[str, Any]) -> None:
        """The shadow audit of a suspended semantic hit (see ``CacheStage._semantic_lookup``)."""
        shadow = self.semantic[4] if self.semantic is not None else None
        if shadow is not None:
            self.stage.shadow_audit(self.ctx.task, shadow, body)

    def _put(self, raw: bytes, usage: Usage | None, body: dict[str, Any]) -> None:
        if not self.allowed:
            metrics.child(metrics.CACHE_SKIPPED, "no_store").inc()
            return
        if len(raw) > self.stage._max_bytes:
            metrics.child(metrics.CACHE_SKIPPED, "too_large").inc()
            return
        if any(isinstance(c, dict) and c.get("finish_reason") in (None, "error") for c in body.get("choices") or ()):
            metrics.child(metrics.CACHE_SKIPPED, "incomplete").inc()
            return
        now = time.time()
        usage = usage or Usage()
        entry = CacheEntry(
            raw, now, now + self.ttl, self.model, self.ctx.task, self.namespace,
            usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens,
        )  # fmt: skip
        self.stage._service.put(self.key, entry)
        semantic = self.semantic
        if semantic is not None and self.stage._semantic is not None:
            _entry, hit, context, text, _shadow = semantic
            vector = getattr(hit, "vector", None)
            if vector is None and self._flying is not None:
                vector = self._flying.vector  # embedded while in flight
            self.stage._service.background(self.stage._semantic.add(context, text, self.key, vector))
