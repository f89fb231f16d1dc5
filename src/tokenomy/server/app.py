"""The ASGI application: routing, load shedding, error rendering and the lifespan.

Read top to bottom, a request goes: route lookup -> admission (key from the headers, body read
with a deadline, then an in-flight slot or 503; ``tokenomy.server.admission``) -> handler (which
validates the body, builds the call context and runs the stage chain) -> response. Any error is
rendered in the wire format of the endpoint that was called; nothing internal reaches a client.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tokenomy.dashboard import routes as dashboard_routes
from tokenomy.errors import GatewayError, internal_error, not_found, overloaded
from tokenomy.gateway import Gateway
from tokenomy.pipeline.context import Endpoint
from tokenomy.server import (
    admin_routes,
    anthropic_routes,
    batch_routes,
    cache_routes,
    models_routes,
    openai_routes,
    ops_routes,
    passthrough_routes,
    responses_routes,
)
from tokenomy.server.admission import Admission, Refused
from tokenomy.server.asgi import Receive, Request, Scope, Send, encode_headers, send_json
from tokenomy.server.context import assign_request_id
from tokenomy.server.logging_setup import CLIENT_REQUEST_ID, REQUEST_ID

log = logging.getLogger("tokenomy.server")

RouteHandler = Callable[[Gateway, Request], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: its handler, the methods it takes, its error format, and whether it is shed."""

    handler: RouteHandler
    methods: frozenset[str]
    wire: str = "openai"
    sheddable: bool = True
    endpoint: Endpoint | None = None  # model calls: a request rejected before the pipeline is still recorded
    streams_body: bool = False  # the handler reads the body itself, as it arrives (file uploads)


ROUTES: dict[str, Route] = {
    "/v1/chat/completions": Route(openai_routes.chat_completions, frozenset({"POST"}), endpoint=Endpoint.CHAT),
    "/v1/completions": Route(openai_routes.completions, frozenset({"POST"}), endpoint=Endpoint.COMPLETIONS),
    "/v1/embeddings": Route(openai_routes.embeddings, frozenset({"POST"}), endpoint=Endpoint.EMBEDDINGS),
    "/v1/responses": Route(responses_routes.create, frozenset({"POST"}), endpoint=Endpoint.CHAT),
    "/v1/messages": Route(anthropic_routes.messages, frozenset({"POST"}), wire="anthropic", endpoint=Endpoint.CHAT),
    "/v1/messages/count_tokens": Route(anthropic_routes.count_tokens, frozenset({"POST"}), wire="anthropic"),
    "/v1/images/generations": Route(
        passthrough_routes.json_endpoint(Endpoint.IMAGES), frozenset({"POST"}), endpoint=Endpoint.IMAGES
    ),
    "/v1/audio/speech": Route(
        passthrough_routes.json_endpoint(Endpoint.SPEECH), frozenset({"POST"}), endpoint=Endpoint.SPEECH
    ),
    "/v1/audio/transcriptions": Route(
        passthrough_routes.transcriptions, frozenset({"POST"}), endpoint=Endpoint.TRANSCRIPTIONS
    ),
    "/v1/moderations": Route(
        passthrough_routes.json_endpoint(Endpoint.MODERATIONS), frozenset({"POST"}), endpoint=Endpoint.MODERATIONS
    ),
    "/v1/rerank": Route(
        passthrough_routes.json_endpoint(Endpoint.RERANK), frozenset({"POST"}), endpoint=Endpoint.RERANK
    ),
    "/v1/models": Route(openai_routes.list_models, frozenset({"GET"}), sheddable=False),
    "/healthz": Route(ops_routes.healthz, frozenset({"GET"}), sheddable=False),
    "/readyz": Route(ops_routes.readyz, frozenset({"GET"}), sheddable=False),
    "/metrics": Route(ops_routes.metrics, frozenset({"GET"}), sheddable=False),
    "/openapi.json": Route(ops_routes.openapi, frozenset({"GET"}), sheddable=False),
    "/v1/cache": Route(cache_routes.invalidate, frozenset({"DELETE"}), sheddable=False),
    "/admin/keys": Route(admin_routes.keys, frozenset({"GET", "POST"}), sheddable=False),
    "/admin/budgets": Route(admin_routes.budgets, frozenset({"GET"}), sheddable=False),
    "/dashboard": Route(dashboard_routes.page, frozenset({"GET"}), sheddable=False),
    "/v1/files": Route(batch_routes.files, frozenset({"GET", "POST"}), streams_body=True),
    "/v1/batches": Route(batch_routes.batches, frozenset({"GET", "POST"})),
}
PREFIX_ROUTES: tuple[tuple[str, Route], ...] = (
    (batch_routes.FILES_PREFIX, Route(batch_routes.file_by_id, frozenset({"GET", "DELETE"}))),
    (batch_routes.BATCHES_PREFIX, Route(batch_routes.batch_by_id, frozenset({"GET", "POST"}))),
)
"""Batch API paths with an id in them, tried only when no exact path matches."""
ADMIN_KEY_ROUTE = Route(admin_routes.key_by_id, frozenset({"DELETE"}), sheddable=False)
"""``/admin/keys/{id}``: a prefix route, tried only when no exact path matches."""
MODEL_ROUTE = Route(models_routes.retrieve, frozenset({"GET"}), sheddable=False)
"""``/v1/models/{id}``: a prefix route."""
RESPONSE_ROUTE = Route(responses_routes.by_id, frozenset({"GET", "DELETE"}))
"""``/v1/responses/{id}`` (and ``/input_items``): a prefix route."""
CACHE_KV_ROUTE = Route(cache_routes.kv, frozenset({"GET", "PUT", "DELETE"}))
"""``/v1/cache/{namespace}/{key}``: the one prefix route, tried only when no exact path matches."""
DASHBOARD_ROUTE = Route(dashboard_routes.under, frozenset({"GET"}), sheddable=False)
"""``/dashboard/static/...`` and ``/dashboard/api/...`` (a prefix route)."""


class TokenomyApp:
    """The gateway as an ASGI 3 application."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.admission = Admission(gateway)
        self._gc_threshold: tuple[int, int, int] | None = None  # the collector's thresholds before start-up
        self._arrivals = self._arrivals_seen = 0
        gateway.live_load = self._live_load  # batch work yields to live requests and to a lagging loop

    def _live_load(self) -> int:
        """Requests in flight, plus one if any arrived since the last call; full past half the shedding lag
        of the gateway's own making."""
        admission = self.admission
        lag = admission.lag
        recent = self._arrivals != self._arrivals_seen
        self._arrivals_seen = self._arrivals
        busy = admission.max_in_flight if lag.limit_s and lag.own_lag_s > lag.limit_s / 2 else 0
        return admission.in_flight + recent + busy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(Request(scope, receive, send))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, req: Request) -> None:
        REQUEST_ID.set(assign_request_id(req))  # every log line of this request carries its id
        CLIENT_REQUEST_ID.set(req.client_request_id)  # and the client's own, when it sent one
        route = ROUTES.get(req.path)
        if route is None and req.path.startswith(cache_routes.PREFIX):
            route = CACHE_KV_ROUTE
        elif route is None and req.path.startswith(admin_routes.KEY_PREFIX):
            route = ADMIN_KEY_ROUTE
        elif route is None and req.path.startswith(responses_routes.PREFIX):
            route = RESPONSE_ROUTE
        elif route is None and req.path.startswith(models_routes.PREFIX):
            route = MODEL_ROUTE
        elif route is None and req.path.startswith(dashboard_routes.PREFIX):
            route = DASHBOARD_ROUTE
        elif route is None:
            route = next((r for prefix, r in PREFIX_ROUTES if req.path.startswith(prefix)), None)
        if route is None:
            wire = "anthropic" if req.path.startswith("/v1/messages") else "openai"  # the caller's SDK
            await self._error(req, wire, not_found(f"Unknown path {req.path!r}.", code="unknown_url"))
            return
        if req.method not in route.methods:
            allowed = ", ".join(sorted(route.methods))
            exc = GatewayError(
                405,
                f"Method {req.method} is not allowed here; use {allowed}.",
                code="method_not_allowed",
                headers={"allow": allowed},
            )
            await self._error(req, route.wire, exc)
            return
        if not route.sheddable:  # operations and admin: no admission, never shed
            await self._run(req, route)
            return
        try:
            holder = await self.admission.admit(
                req, authenticate=route.endpoint is not None, read_body=not route.streams_body
            )
        except Refused as refused:
            if route.endpoint is not None and self.admission.rows.take(refused.reason):
                self.gateway.record_rejected(req, route.endpoint, route.wire, refused.error)
            await self._error(req, route.wire, refused.error)
            return
        except asyncio.CancelledError:
            self._uncancel_if_gone(req)
            return
        if route.endpoint is not None:  # model calls: batch work also waits out short gaps between them
            self._arrivals += 1
        try:
            await self._run(req, route)
        finally:
            self.admission.release(holder)

    async def _run(self, req: Request, route: Route) -> None:
        try:
            await route.handler(self.gateway, req)
        except GatewayError as exc:
            if route.endpoint is not None and not req.in_pipeline:  # rejected at the edge (bad input)
                self.gateway.record_rejected(req, route.endpoint, route.wire, exc)
            await self._error(req, route.wire, exc)
        except asyncio.CancelledError:
            if self.gateway.stopping:  # cancelled at the shutdown deadline (server/shutdown.py)
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                await self._error(req, route.wire, overloaded("The gateway is shutting down; retry shortly.", 1))
            else:
                self._uncancel_if_gone(req)
        except Exception:
            log.exception("unhandled error on %s (request %s)", req.path, req.request_id)
            failure = internal_error()
            if route.endpoint is not None and not req.in_pipeline:
                self.gateway.record_rejected(req, route.endpoint, route.wire, failure)
            await self._error(req, route.wire, failure)
        finally:
            req.stop_watching()

    @staticmethod
    def _uncancel_if_gone(req: Request) -> None:
        """A cancellation because the client left needs no answer; any other propagates."""
        if not req.disconnected:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()

    async def _error(self, req: Request, wire: str, exc: GatewayError) -> None:
        if req.responded or req.disconnected:
            return
        req.responded = True
        body = exc.anthropic_body() if wire == "anthropic" else exc.openai_body()
        headers = encode_headers({**req.id_headers(), **exc.headers})
        status = 529 if wire == "anthropic" and exc.status == 503 else exc.status
        await send_json(req.send, status, body, headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    started = time.perf_counter()
                    await self.gateway.start()
                    self.admission.lag.start()
                    # Everything allocated so far lives as long as the process: keep it out of the
                    # collector's full passes, which would otherwise rescan it every few seconds.
                    gc.freeze()
                    # and run those passes less often: each walks every live object (connections,
                    # calls in progress), and under overload they cost more per answer than the
                    # little cyclic garbage they find (bench/overload/crowding.py)
                    self._gc_threshold = gc.get_threshold()
                    young, middle, _ = self._gc_threshold
                    gc.set_threshold(young, middle, self.gateway.config.server.gc_full_pass_every)
                    log.info("gateway started in %.3f s", time.perf_counter() - started)
                except Exception as exc:  # pragma: no cover - reported to the server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._gc_threshold is not None:
                    gc.set_threshold(*self._gc_threshold)
                await self.admission.lag.stop()
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
