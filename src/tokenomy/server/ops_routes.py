"""Operational endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import hmac

from tokenomy.errors import GatewayError, authentication_error
from tokenomy.gateway import Gateway
from tokenomy.keys.record import hash_key
from tokenomy.pipeline.guard import presented_key
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
    """``GET /metrics``: Prometheus exposition.

    Open on a gateway without keys. With ``server.metrics_key`` it needs that key (or the admin
    key) as a bearer token; a gateway that requires API keys and has neither refuses it (the
    metrics name every tenant's models and tasks).
    """
    require_metrics_key(gw, req)
    body, content_type = prom.render()
    await send_bytes(req.send, 200, body, content_type.encode())


async def openapi(gw: Gateway, req: Request) -> None:
    """``GET /openapi.json``: the public API."""
    await send_bytes(req.send, 200, openapi_document())


def require_metrics_key(gw: Gateway, req: Request) -> None:
    """401/403 unless the caller may read the metrics (see :func:`metrics`)."""
    allowed = [ref.resolve() for ref in (gw.config.server.metrics_key, gw.config.auth.admin_key) if ref is not None]
    secrets = [s for s in allowed if s]
    if not secrets:
        if gw.guard.enabled:
            raise GatewayError(
                403,
                "This gateway requires API keys, so /metrics needs server.metrics_key (or the admin key); "
                "set server.metrics_key: ${TOKENOMY_METRICS_KEY}.",
                "permission_error",
                code="metrics_key_not_configured",
            )
        return
    given = presented_key(req.headers)
    if given is None or not any(hmac.compare_digest(hash_key(given), hash_key(s)) for s in secrets):
        raise authentication_error("/metrics needs the metrics key: send 'Authorization: Bearer <metrics key>'.")
