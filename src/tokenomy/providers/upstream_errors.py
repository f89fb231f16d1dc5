"""Mapping upstream failures onto the gateway's client-facing errors.

429 keeps its ``Retry-After``; the upstream's client errors (400/404/422) pass through with
their message; credential problems and 5xx become 502; timeouts 504. Nothing internal leaks:
every text taken from an upstream (messages, params, headers) passes through the redactor, so a
secret an upstream echoes (the gateway's own upstream key, say) never reaches a client or a log.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenomy.errors import GatewayError
from tokenomy.providers.upstream_client import UpstreamCut, UpstreamTimeout, UpstreamTransportError, UpstreamUnreachable
from tokenomy.redaction import redact
from tokenomy.telemetry import metrics


def upstream_message(body: bytes) -> tuple[str | None, str | None]:
    """The ``(message, param)`` of an OpenAI- or Anthropic-format error body, if it has one."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        msg, param = err.get("message"), err.get("param")
        return (redact(str(msg)[:2000]) if msg else None), (redact(str(param)[:200]) if param else None)
    return None, None


def from_status(status: int, body: bytes, retry_after: str | None, deployment: str) -> GatewayError:
    """The gateway error for an upstream HTTP error ``status``."""
    message, param = upstream_message(body)
    detail = f": {message}" if message else ""
    if status == 429:
        metrics.UPSTREAM_ERRORS.labels(deployment, "rate_limited").inc()
        extra = {}
        if retry_after:
            extra["retry-after"] = redact(retry_after)[:64]
        return GatewayError(
            429, f"Upstream rate limit reached{detail}", "rate_limit_error", code="rate_limit_exceeded", headers=extra
        )
    if status in (400, 404, 409, 413, 422):
        metrics.UPSTREAM_ERRORS.labels(deployment, "client_error").inc()
        return GatewayError(
            400 if status == 422 else status,
            f"Upstream rejected the request{detail}",
            "invalid_request_error",
            param=param,
            code="upstream_invalid_request",
        )
    if status in (401, 403):
        metrics.UPSTREAM_ERRORS.labels(deployment, "auth").inc()
        return GatewayError(
            502,
            f"Upstream deployment {deployment!r} rejected the gateway's credentials (HTTP {status}).",
            "upstream_error",
            code="upstream_auth_failed",
        )
    metrics.UPSTREAM_ERRORS.labels(deployment, "server_error").inc()
    return GatewayError(502, f"Upstream error (HTTP {status}){detail}", "upstream_error", code="upstream_error")


def from_exception(exc: UpstreamTransportError, deployment: str) -> GatewayError:
    """The gateway error for a transport failure talking to an upstream."""
    if isinstance(exc, UpstreamTimeout):
        metrics.UPSTREAM_ERRORS.labels(deployment, "timeout").inc()
        return GatewayError(
            504, f"Upstream deployment {deployment!r} timed out.", "timeout_error", code="upstream_timeout"
        )
    if isinstance(exc, UpstreamUnreachable):
        metrics.UPSTREAM_ERRORS.labels(deployment, "unreachable").inc()
        return GatewayError(
            502, f"Upstream deployment {deployment!r} is unreachable.", "upstream_error", code="upstream_unreachable"
        )
    metrics.UPSTREAM_ERRORS.labels(deployment, "transport").inc()
    return GatewayError(
        502,
        f"The connection to upstream deployment {deployment!r} failed ({exc.cause}).",
        "upstream_error",
        code="upstream_connection_error",
    )


def from_read_exception(exc: UpstreamTransportError, deployment: str) -> GatewayError:
    """A failure while reading an upstream body or stream (a cut connection is a broken stream)."""
    if isinstance(exc, UpstreamCut):
        return stream_error("Upstream closed the stream mid-way.", deployment)
    return from_exception(exc, deployment)


def stream_error(message: str, deployment: str) -> GatewayError:
    """A broken or unexpected upstream SSE stream."""
    metrics.UPSTREAM_ERRORS.labels(deployment, "bad_stream").inc()
    return GatewayError(502, redact(message[:2000]), "upstream_error", code="upstream_bad_stream")
