"""Assembling a gateway from its configuration: providers, the model table and the stage chain."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from tokenomy.batches.owner import batch_chain
from tokenomy.batches.service import BatchService
from tokenomy.budgets.wiring import Access
from tokenomy.cache.service import CacheService
from tokenomy.cache.stores import cache_store_for
from tokenomy.cache.stores.base import CacheStore
from tokenomy.config.models import GatewayConfig
from tokenomy.errors import GatewayError, overloaded
from tokenomy.ledger.enrich import Enricher
from tokenomy.ledger.stores import store_for
from tokenomy.ledger.writer import LedgerWriter, NoLedger, RecordHook
from tokenomy.pipeline.cache import CacheStage
from tokenomy.pipeline.chain import Handler, Stage, build_chain
from tokenomy.pipeline.context import CallContext, Endpoint, Response
from tokenomy.pipeline.dispatch import Dispatcher
from tokenomy.pipeline.guard import GuardStage
from tokenomy.pipeline.policy import PolicyStage
from tokenomy.pipeline.record import RecordStage
from tokenomy.pipeline.route import ModelTable, RouteStage
from tokenomy.providers.base import Provider, provider_factory
from tokenomy.telemetry.labels import TaskLabels
from tokenomy.telemetry.usage_metrics import UsageMetrics

log = logging.getLogger("tokenomy.gateway")


class Gateway:
    """The request path of one gateway process and the providers it owns."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self.table = ModelTable(config)
        kinds = sorted({dep.provider for model in config.models for dep in model.deployments})
        self.providers: dict[str, Provider] = {kind: provider_factory(kind)(config) for kind in kinds}
        tasks = TaskLabels(config.telemetry.max_task_labels)
        hooks: list[RecordHook] = [UsageMetrics(tasks)]
        self.tracer: Any = None
        if config.telemetry.tracing.enabled:  # the OpenTelemetry SDK is only imported when used
            from tokenomy.telemetry.tracing import build_tracer

            self.tracer = build_tracer(config.telemetry.tracing)
        if self.tracer is not None:
            hooks.append(self.tracer.record)
        self.ledger: LedgerWriter | NoLedger = (
            LedgerWriter(store_for(config.ledger), Enricher(config), config.ledger, hooks)
            if config.ledger.enabled
            else NoLedger()
        )
        self.cache_store: CacheStore | None = cache_store_for(config.cache.exact)  # also the KV API's store
        self.cache = CacheService(config.cache.exact.memory_bytes, self.cache_store)
        self.access = Access(config, self.table, self.ledger)  # keys, per-key limits, budgets
        self.recorder = RecordStage(self.access.sink(self.ledger), tasks)
        self.stages: list[Stage] = [
            self.recorder,
            GuardStage(config.auth, self.access.keys, self.access.budgets),
            PolicyStage(config),  # router models; before cache, which resolves the model name
            CacheStage(config.cache, self.cache, self.table, *self._semantic_tier(config)),
            # the optimize stage slots in here (see docs/architecture.md)
            RouteStage(self.table),
        ]
        self.terminal: Handler = _ReadyCheck(self.providers, Dispatcher(self.providers))
        self.handle: Handler = build_chain(self.stages, self.terminal)
        self.batches = BatchService(config.batches) if config.batches.enabled else None  # the Batch API
        self.live_load: Callable[[], int] = lambda: 0  # live requests in flight (set by the HTTP edge)
        self._starting: list[asyncio.Task[None]] = []

    def _semantic_tier(self, config: GatewayConfig) -> tuple[Any, Any]:
        """The semantic cache and its context function, when any request may use it."""
        self.semantic: Any = None
        if not (config.cache.semantic.enabled or any(rule.semantic for rule in config.cache.rules)):
            return None, None
        from tokenomy.cache.semantic.context import conversation_context
        from tokenomy.cache.semantic.matcher import SemanticCache
        from tokenomy.providers.local.shared_embed import shared_embedder

        # the embedded all-MiniLM-L6-v2, shared with the learned router (a prompt is embedded once)
        self.semantic = SemanticCache(config.cache.semantic, shared_embedder().aembed)
        return self.semantic, conversation_context

    async def start(self) -> None:
        """Start the ledger writer, and every provider in the background (``ready()`` follows)."""
        self.ledger.start()
        await self.access.open()
        for kind, provider in self.providers.items():
            task = asyncio.create_task(provider.start(), name=f"start:{kind}")
            task.add_done_callback(_log_start_failure)
            self._starting.append(task)
        # HTTP providers start instantly; wait for them so the first request finds pools open.
        await asyncio.sleep(0)
        if self.batches is not None:  # resumes batches a previous run left unfinished
            live = lambda: self.live_load()  # noqa: E731 - the edge sets live_load after the gateway exists
            await self.batches.start(batch_chain(self), live, self.table.resolve, self.recorder.finish)

    async def close(self) -> None:
        """Stop providers (pools closed, models released), then flush the ledger."""
        for task in self._starting:
            if not task.done():
                task.cancel()
        if self.batches is not None:
            await self.batches.close()  # before the providers: in-flight batch requests may finish
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:  # pragma: no cover - shutdown must go on
                log.exception("closing a provider failed")
        if self.semantic is not None:
            await asyncio.to_thread(self.semantic.close)  # saves the vector index
        try:
            await self.cache.close()
        except Exception:  # pragma: no cover - shutdown must go on
            log.exception("closing the cache failed")
        try:
            await self.access.close()
        except Exception:  # pragma: no cover - shutdown must go on
            log.exception("closing the key or budget store failed")
        await asyncio.to_thread(self.ledger.close)  # drains the queue into the store (or the spool)
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.shutdown)  # exports the last spans

    def record_rejected(
        self, request_id: str, endpoint: Endpoint, wire: str, headers: dict[str, str], exc: GatewayError
    ) -> None:
        """Account for a request refused at the edge (malformed body, too large) before the pipeline."""
        ctx = CallContext(request_id=request_id, endpoint=endpoint, body={}, model="", headers=headers, wire=wire)
        ctx.status, ctx.error_type = exc.status, exc.type
        self.recorder.finish(ctx)

    def readiness(self) -> dict[str, bool]:
        """Each provider kind and whether it is ready."""
        return {kind: provider.ready() for kind, provider in self.providers.items()}


class _ReadyCheck:
    """Answer 503 with ``Retry-After`` while the chosen provider is still loading."""

    def __init__(self, providers: dict[str, Provider], dispatch: Handler) -> None:
        self._providers = providers
        self._dispatch = dispatch

    async def __call__(self, ctx: CallContext) -> Response:
        deployment = ctx.deployment
        if deployment is not None and not self._providers[deployment.provider].ready():
            raise overloaded(f"The model {ctx.model!r} is still loading; retry shortly.", 1)
        return await self._dispatch(ctx)


def _log_start_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("provider %s failed to start: %s", task.get_name(), task.exception())
