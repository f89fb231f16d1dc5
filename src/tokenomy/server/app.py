"""The ASGI application: routing, load shedding, error rendering and the lifespan.

Read top to bottom, a request goes: route lookup -> shed if full -> handler (which reads the
body, validates it, builds the call context and runs the stage chain) -> response. Any error is
rendered in the wire format of the endpoint that was called; nothing internal reaches a client.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tokenomy.errors import GatewayError, internal_error, not_found, overloaded
from tokenomy.gateway import Gateway
from tokenomy.pipeline.context import Endpoint
from tokenomy.server import admin_routes, anthropic_routes, batch_routes, cache_routes, openai_routes, ops_routes
from tokenomy.server.asgi import Receive, Request, Scope, Send, encode_headers, send_json
from tokenomy.server.context import assign_request_id
from tokenomy.server.overload import LoopLagMonitor
from tokenomy.telemetry import metrics

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


ROUTES: dict[str, Route] = {
    "/v1/chat/completions": Route(openai_routes.chat_completions, frozenset({"POST"}), endpoint=Endpoint.CHAT),
    "/v1/completions": Route(openai_routes.completions, frozenset({"POST"}), endpoint=Endpoint.COMPLETIONS),
    "/v1/embeddings": Route(openai_routes.embeddings, frozenset({"POST"}), endpoint=Endpoint.EMBEDDINGS),
    "/v1/messages": Route(anthropic_routes.messages, frozenset({"POST"}), wire="anthropic", endpoint=Endpoint.CHAT),
    "/v1/models": Route(openai_routes.list_models, frozenset({"GET"}), sheddable=False),
    "/healthz": Route(ops_routes.healthz, frozenset({"GET"}), sheddable=False),
    "/readyz": Route(ops_routes.readyz, frozenset({"GET"}), sheddable=False),
    "/metrics": Route(ops_routes.metrics, frozenset({"GET"}), sheddable=False),
    "/openapi.json": Route(ops_routes.openapi, frozenset({"GET"}), sheddable=False),
    "/v1/cache": Route(cache_routes.invalidate, frozenset({"DELETE"}), sheddable=False),
    "/admin/keys": Route(admin_routes.keys, frozenset({"GET", "POST"}), sheddable=False),
    "/admin/budgets": Route(admin_routes.budgets, frozenset({"GET"}), sheddable=False),
    "/v1/files": Route(batch_routes.files, frozenset({"GET", "POST"})),
    "/v1/batches": Route(batch_routes.batches, frozenset({"GET", "POST"})),
}
PREFIX_ROUTES: tuple[tuple[str, Route], ...] = (
    (batch_routes.FILES_PREFIX, Route(batch_routes.file_by_id, frozenset({"GET", "DELETE"}))),
    (batch_routes.BATCHES_PREFIX, Route(batch_routes.batch_by_id, frozenset({"GET", "POST"}))),
)
"""Batch API paths with an id in them, tried only when no exact path matches."""
ADMIN_KEY_ROUTE = Route(admin_routes.key_by_id, frozenset({"DELETE"}), sheddable=False)
"""``/admin/keys/{id}``: a prefix route, tried only when no exact path matches."""
CACHE_KV_ROUTE = Route(cache_routes.kv, frozenset({"GET", "PUT", "DELETE"}))
"""``/v1/cache/{namespace}/{key}``: the one prefix route, tried only when no exact path matches."""


class TokenomyApp:
    """The gateway as an ASGI 3 application."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._max_in_flight = gateway.config.server.max_in_flight
        self._in_flight = 0
        self._lag = LoopLagMonitor(gateway.config.server.shed_loop_lag_ms / 1000)
        self._arrivals = self._arrivals_seen = 0
        gateway.live_load = self._live_load  # batch work yields to live requests and to a lagging loop

    def _live_load(self) -> int:
        """Requests in flight, plus one if any arrived since the last call; past half the shedding lag, full."""
        lag = self._lag
        recent = self._arrivals != self._arrivals_seen
        self._arrivals_seen = self._arrivals
        busy = self._max_in_flight if lag.limit_s and lag.lag_s > lag.limit_s / 2 else 0
        return self._in_flight + recent + busy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(Request(scope, receive, send))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, req: Request) -> None:
        assign_request_id(req)
        route = ROUTES.get(req.path)
        if route is None and req.path.startswith(cache_routes.PREFIX):
            route = CACHE_KV_ROUTE
        elif route is None and req.path.startswith(admin_routes.KEY_PREFIX):
            route = ADMIN_KEY_ROUTE
        elif route is None:
            route = next((r for prefix, r in PREFIX_ROUTES if req.path.startswith(prefix)), None)
        if route is None:
            await self._error(req, "openai", not_found(f"Unknown path {req.path!r}.", code="unknown_url"))
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
        if route.sheddable and (self._in_flight >= self._max_in_flight or self._lag.overloaded):
            metrics.SHED.inc()
            await self._error(req, route.wire, overloaded("The gateway is at capacity; retry shortly.", 1))
            return
        self._in_flight += 1
        if route.endpoint is not None:  # model calls: batch work also waits out short gaps between them
            self._arrivals += 1
        metrics.IN_FLIGHT.inc()
        try:
            await route.handler(self.gateway, req)
        except GatewayError as exc:
            if route.endpoint is not None and not req.in_pipeline:  # rejected at the edge (bad input)
                self.gateway.record_rejected(req.request_id, route.endpoint, route.wire, req.headers, exc)
            await self._error(req, route.wire, exc)
        except asyncio.CancelledError:
            if not req.disconnected:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the client left; nothing to answer
        except Exception:
            log.exception("unhandled error on %s (request %s)", req.path, req.request_id)
            await self._error(req, route.wire, internal_error())
        finally:
            req.stop_watching()
            self._in_flight -= 1
            metrics.IN_FLIGHT.dec()

    async def _error(self, req: Request, wire: str, exc: GatewayError) -> None:
        if req.responded or req.disconnected:
            return
        req.responded = True
        body = exc.anthropic_body() if wire == "anthropic" else exc.openai_body()
        headers = encode_headers({"x-request-id": req.request_id, **exc.headers})
        status = 529 if wire == "anthropic" and exc.status == 503 else exc.status
        await send_json(req.send, status, body, headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    started = time.perf_counter()
                    await self.gateway.start()
                    self._lag.start()
                    # Everything allocated so far lives as long as the process: keep it out of the
                    # collector's full passes, which would otherwise rescan it every few seconds.
                    gc.freeze()
                    log.info("gateway started in %.3f s", time.perf_counter() - started)
                except Exception as exc:  # pragma: no cover - reported to the server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._lag.stop()
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
