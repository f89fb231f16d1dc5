"""Creating the call context from an HTTP request, and the headers every response carries."""

from __future__ import annotations

import logging
import re
from typing import Any

from tokenomy.errors import GatewayError, internal_error
from tokenomy.pipeline.context import CallContext, Endpoint, new_request_id
from tokenomy.server.asgi import Request, id_headers

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TASK_HEADER = "x-tokenomy-task"


def assign_request_id(req: Request) -> str:
    """Give the request a new gateway id, and keep the client's ``x-request-id`` (when sane) apart.

    The gateway id keys the ledger row; the client's id is only a correlation field (stored with
    the tenant, never unique), so a client cannot overwrite or erase anyone's row by choosing it.
    """
    given = req.headers.get("x-request-id")
    req.client_request_id = given if given and _REQUEST_ID.match(given) else None
    req.request_id = new_request_id()
    return req.request_id


def task_tag(headers: dict[str, str], body: dict[str, Any]) -> str:
    """The task tag: header ``x-tokenomy-task``, else ``metadata.task``, else ``untagged``."""
    tag = headers.get(TASK_HEADER)
    if not tag:
        metadata = body.get("metadata")
        tag = metadata.get("task") if isinstance(metadata, dict) else None
    return str(tag)[:64] if tag else "untagged"


def new_context(req: Request, endpoint: Endpoint, body: dict[str, Any], wire: str = "openai") -> CallContext:
    """A call context for a validated request body."""
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    headers = req.headers
    req.in_pipeline = True
    return CallContext(
        request_id=req.request_id or assign_request_id(req),
        client_request_id=req.client_request_id,
        endpoint=endpoint,
        body=body,
        model=body["model"],
        requested_model=body["model"],
        stream=stream,
        include_usage=stream and isinstance(options, dict) and bool(options.get("include_usage")),
        headers=headers,
        wire=wire,
        task=task_tag(headers, body),
    )


def response_headers(ctx: CallContext) -> dict[str, str]:
    """``x-request-id`` and ``x-tokenomy-model`` (the model that actually served the request)."""
    out = id_headers(ctx.request_id, ctx.client_request_id)
    if ctx.served_model:
        out["x-tokenomy-model"] = ctx.served_model
    if ctx.deployment is not None:
        out["x-tokenomy-deployment"] = ctx.deployment.label
    optimized = ctx.decisions.get("optimize")
    if optimized is not None:
        out["x-tokenomy-optimize"] = optimized
        warning = ctx.decisions.get("optimize_warning")
        if warning is not None:
            out["x-tokenomy-optimize-warning"] = warning
    confidence = ctx.decisions.get("confidence")  # a distilled student's answer
    if confidence is not None:
        out["x-tokenomy-confidence"] = str(confidence)
    if ctx.cache != "none":
        out["x-tokenomy-cache"] = ctx.cache
        similarity = ctx.decisions.get("cache_similarity")
        if similarity is not None:
            out["x-tokenomy-cache-similarity"] = str(similarity)
        waited = ctx.decisions.get("cache_waited_ms")  # a semantic match that was still in flight
        if waited is not None:
            out["x-tokenomy-cache-waited-ms"] = str(waited)
        items = ctx.decisions.get("cache_items")
        if items is not None:
            out["x-tokenomy-cache-items"] = str(items)
    return out


def stream_failure(exc: Exception, ctx: CallContext) -> GatewayError:
    """The error to end a stream with after it started: ``exc`` itself, or (logged) a generic 500."""
    if isinstance(exc, GatewayError):
        return exc
    logging.getLogger("tokenomy.server").exception("stream failed (request %s)", ctx.request_id)
    return internal_error()
