"""Assembling a gateway from its configuration: providers, the model table and the stage chain."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tokenomy.batches.owner import batch_chain
from tokenomy.batches.service import BatchService
from tokenomy.budgets.wiring import Access
from tokenomy.cache.service import CacheService
from tokenomy.cache.stores import cache_store_for
from tokenomy.cache.stores.base import CacheStore
from tokenomy.config.models import GatewayConfig
from tokenomy.errors import GatewayError, overloaded
from tokenomy.evaluate.shadow import ShadowTraffic
from tokenomy.ledger.enrich import Enricher
from tokenomy.ledger.process_ledger import ProcessLedger
from tokenomy.ledger.stores import NullStore, store_for
from tokenomy.ledger.writer import LedgerWriter, NoLedger, RecordHook
from tokenomy.ledger.writer_launcher import (
    ACCESS_ENV,
    SOCKET_ENV,
    WriterLauncher,
    new_socket_path,
    writer_settings,
    writer_writes_access_log,
)
from tokenomy.optimize.stage import OptimizeStage
from tokenomy.optimize.summary import summarizer
from tokenomy.pipeline.cache import CacheStage
from tokenomy.pipeline.chain import Handler, Stage, build_chain
from tokenomy.pipeline.context import CallContext, Endpoint, Response, new_request_id
from tokenomy.pipeline.dispatch import Dispatcher
from tokenomy.pipeline.guard import GuardStage
from tokenomy.pipeline.policy import PolicyStage
from tokenomy.pipeline.record import RecordStage
from tokenomy.pipeline.route import ModelTable, RouteStage
from tokenomy.providers.base import Provider, provider_factory
from tokenomy.providers.local.onnx_threads import Spinning
from tokenomy.redaction import install_log_redaction, register_config_secrets
from tokenomy.state.responses import ResponseStore, response_store_for
from tokenomy.state.shared_memory import worker_state
from tokenomy.telemetry import metrics
from tokenomy.telemetry.access_log import AccessLog
from tokenomy.telemetry.labels import TaskLabels

if TYPE_CHECKING:
    from tokenomy.server.asgi import Request
from tokenomy.telemetry.usage_metrics import UsageMetrics

log = logging.getLogger("tokenomy.gateway")


class Gateway:
    """The request path of one gateway process and the providers it owns."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.started_at = time.time()
        register_config_secrets(config)  # error texts and logs never show a configured secret
        install_log_redaction()
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
        access: list[RecordHook] = [AccessLog()] if config.server.access_log else []
        self.ledger: Ledger = _ledger(config, hooks, access)
        self.cache_store: CacheStore | None = cache_store_for(config.cache.exact)  # also the KV API's store
        self.cache = CacheService(config.cache.exact.memory_bytes, self.cache_store)
        shared = worker_state()  # a worker of `serve --workers`: invalidations reach every worker's level 1
        if shared is not None:
            self.cache.share_invalidations(shared)
        if isinstance(self.ledger, ProcessLedger) and config.cache.exact.store == "sqlite":
            self.cache.send_writes_to(self.ledger.put_cache, self.ledger.flush)  # level-2 writes: writer process
        self.access = Access(config, self.table, self.ledger)  # keys, per-key limits, budgets
        self.responses: ResponseStore = response_store_for(config.responses)  # Responses API state
        self.stopping = False  # the shutdown deadline passed: requests cancelled now are recorded as such
        self.recorder = RecordStage(
            self.access.sink(self.ledger), tasks, config.ledger.store_prompts, stopping=lambda: self.stopping
        )
        self.guard = GuardStage(config.auth, self.access.keys, self.access.budgets)
        self.shadow = ShadowTraffic.for_config(config, self.ledger.submit)  # None without shadow rules
        route = RouteStage(self.table)
        ready = _ReadyCheck(self.providers, Dispatcher(self.providers))
        internal = build_chain([self.recorder, route], ready)  # the gateway's own calls (history summaries)
        self.stages: list[Stage] = [
            self.recorder,
            *([self.shadow] if self.shadow is not None else []),  # copies sampled requests after the answer
            self.guard,
            PolicyStage(config),  # router models; before cache, which resolves the model name
            CacheStage(config.cache, self.cache, self.table, *self._semantic_tier(config)),
            OptimizeStage(
                config.optimize,
                self.table,
                functools.partial(_shared_embed, config.server.onnx_spinning),
                tasks,
                config.local.generation.model_path,
                summarizer(internal),
            ),
            route,
        ]
        self.terminal: Handler = ready
        self.handle: Handler = build_chain(self.stages, ready)
        if self.shadow is not None:  # copies skip auth, budgets and the cache: only routing and dispatch
            self.shadow.chain = build_chain([s for s in self.stages if s.name in ("policy", "route")], ready)
        for stage in self.stages:  # audits of semantic hits run through the whole chain (billed, recorded)
            if isinstance(stage, CacheStage):
                stage.audit_handler = self.handle
        self.batches = BatchService(config.batches) if config.batches.enabled else None  # the Batch API
        self.live_load: Callable[[], int] = lambda: 0  # live requests in flight (set by the HTTP edge)
        self._starting: list[asyncio.Task[None]] = []
        self._publisher: asyncio.Task[None] | None = None

    def _semantic_tier(self, config: GatewayConfig) -> tuple[Any, Any]:
        """The semantic cache and its context function, when any request may use it."""
        self.semantic: Any = None
        if not (config.cache.semantic.enabled or any(rule.semantic for rule in config.cache.rules)):
            return None, None
        from tokenomy.cache.semantic.context import conversation_context
        from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic
        from tokenomy.cache.semantic.matcher import SemanticCache
        from tokenomy.config.policy import LearnedRouterConfig
        from tokenomy.providers.local.shared_embed import shared_embedder

        # the embedded all-MiniLM-L6-v2, shared with a learned router (a prompt is embedded once);
        # without one, in int8 where the CPU has VNNI (cache/semantic/embedder_choice.py)
        learned = any(isinstance(r, LearnedRouterConfig) for r in config.routers)
        arithmetic = embedder_arithmetic(config.cache.semantic.embedder_arithmetic, learned)
        log.info("semantic cache: the query embedder computes in %s", arithmetic)
        spinning = config.server.onnx_spinning
        embed = shared_embedder(arithmetic, spinning).aembed
        self.semantic = SemanticCache(config.cache.semantic, embed, spinning=spinning)
        return self.semantic, conversation_context

    async def start(self) -> None:
        """Start the ledger writer, and every provider in the background (``ready()`` follows)."""
        self.ledger.start()
        if isinstance(self.ledger, ProcessLedger):
            await self.ledger.connected()  # the writer process is up before traffic arrives
        await self.access.open()
        if metrics.MULTIPROCESS:  # serve --workers: sampled counts and gauges reach the files every worker sums
            self._publisher = asyncio.create_task(metrics.publish_sampled(), name="tokenomy-metrics-publish")
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
        if self.shadow is not None:
            await self.shadow.close()
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
        try:
            await self.responses.close()
        except Exception:  # pragma: no cover - shutdown must go on
            log.exception("closing the response store failed")
        if self._publisher is not None:
            self._publisher.cancel()  # publishes the last counts as it stops
            await asyncio.gather(self._publisher, return_exceptions=True)
        await asyncio.to_thread(self.ledger.close)  # drains the queue into the store (or the spool)
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.shutdown)  # exports the last spans

    def shutdown_deadline_passed(self) -> None:
        """From now on a cancelled request was cut short by the shutdown (see server/shutdown.py)."""
        self.stopping = True

    def record_rejected(self, req: Request, endpoint: Endpoint, wire: str, exc: GatewayError) -> None:
        """Account for a request refused at the edge (malformed body, too large) before the pipeline."""
        ctx = CallContext(
            request_id=req.request_id,
            endpoint=endpoint,
            body={},
            model="",
            headers=req.headers,
            wire=wire,
            client_request_id=req.client_request_id,
        )
        if req.key is not None:  # authenticated at the edge before the refusal
            ctx.api_key_name, ctx.tenant = req.key.name, req.key.tenant
        ctx.status, ctx.error_type = exc.status, exc.type
        self.recorder.finish(ctx)

    def record_shed(self, path: str) -> None:
        """Account for a model call shed by the server before it became a request object."""
        endpoint = _SHED_ENDPOINTS.get(path.split("?", 1)[0])
        if endpoint is None:
            return
        wire = "anthropic" if path.startswith("/v1/messages") else "openai"
        ctx = CallContext(request_id=new_request_id(), endpoint=endpoint, body={}, model="", wire=wire)
        ctx.status, ctx.error_type = 503, "server_overloaded"
        self.recorder.finish(ctx)

    def readiness(self) -> dict[str, bool]:
        """Each provider kind and whether it is ready."""
        return {kind: provider.ready() for kind, provider in self.providers.items()}


_SHED_ENDPOINTS = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/v1/completions": Endpoint.COMPLETIONS,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/v1/messages": Endpoint.CHAT,
}

Ledger = LedgerWriter | ProcessLedger | NoLedger


def _ledger(config: GatewayConfig, hooks: list[RecordHook], access: list[RecordHook]) -> Ledger:
    """The ledger writer the config asks for: a writer process (default), a thread, or none.

    With a writer process, the writer writes the access log when it writes to this process's log
    (``writer_writes_access_log``); this process then writes only the lines of records the writer
    could not take (spooled), so each request still gets exactly one line.
    """
    if not config.ledger.enabled:
        # no ledger: records are still built for the access log, and stored nowhere
        return LedgerWriter(NullStore(), Enricher(config), config.ledger, access) if access else NoLedger()
    if config.ledger.writer == "thread" or not sys.platform.startswith("linux"):  # SOCK_SEQPACKET: Linux
        return LedgerWriter(store_for(config.ledger), Enricher(config), config.ledger, [*hooks, *access])
    shared = os.environ.get(SOCKET_ENV)  # a worker of `serve --workers`: its supervisor owns the writer
    if shared:
        if os.environ.get(ACCESS_ENV) == "1":  # the supervisor's writer writes the access log
            return ProcessLedger(Enricher(config), config.ledger, shared, hooks, spill_hooks=access)
        return ProcessLedger(Enricher(config), config.ledger, shared, [*hooks, *access])
    path = new_socket_path()
    in_writer = bool(access) and writer_writes_access_log(config)
    launcher = WriterLauncher(writer_settings(config, path, access_log=in_writer))
    if in_writer:
        return ProcessLedger(Enricher(config), config.ledger, path, hooks, launcher, spill_hooks=access)
    return ProcessLedger(Enricher(config), config.ledger, path, [*hooks, *access], launcher)


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


def _shared_embed(spinning: Spinning) -> Any:
    """The embedded MiniLM's ``aembed`` (imported when few-shot selection first needs it)."""
    from tokenomy.providers.local.shared_embed import shared_embedder

    return shared_embedder("float32", spinning).aembed


def _log_start_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("provider %s failed to start: %s", task.get_name(), task.exception())
