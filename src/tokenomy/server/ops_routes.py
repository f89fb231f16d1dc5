"""Operational endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from tokenomy.gateway import Gateway
from tokenomy.server.asgi import Request, send_bytes, send_json
from tokenomy.server.openapi import openapi_document
from tokenomy.telemetry import metrics as prom


async def healthz(gw: Gateway, req: Request) -> None:
    """``GET /healthz``: the process is up."""
    await send_json(req.send, 200, {"status": "ok"})


async def readyz(gw: Gateway, req: Request) -> None:
    """``GET /readyz``: 200 once every provider is ready (local models loaded and warmed up)."""
    providers = gw.readiness()
    ready = all(providers.values())
    await send_json(req.send, 200 if ready else 503, {"ready": ready, "providers": providers})


async def metrics(gw: Gateway, req: Request) -> None:
    """``GET /metrics``: Prometheus exposition."""
    body, content_type = prom.render()
    await send_bytes(req.send, 200, body, content_type.encode())


async def openapi(gw: Gateway, req: Request) -> None:
    """``GET /openapi.json``: the public API."""
    await send_bytes(req.send, 200, openapi_document())
