"""Creating the call context from an HTTP request, and the headers every response carries."""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

from tokenomy.pipeline.context import CallContext, Endpoint
from tokenomy.server.asgi import Request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids: a random per-process prefix and a counter. Unique across processes and restarts
# like a random id, without a system call per request (secrets.token_hex reads os.urandom).
_ID_PREFIX = "req_" + secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)
TASK_HEADER = "x-tokenomy-task"


def assign_request_id(req: Request) -> str:
    """Set and return the request id: the client's ``x-request-id`` when it is sane, else a new one."""
    given = req.headers.get("x-request-id")
    req.request_id = given if given and _REQUEST_ID.match(given) else f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
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
        endpoint=endpoint,
        body=body,
        model=body["model"],
        stream=stream,
        include_usage=stream and isinstance(options, dict) and bool(options.get("include_usage")),
        headers=headers,
        wire=wire,
        task=task_tag(headers, body),
    )


def response_headers(ctx: CallContext) -> dict[str, str]:
    """``x-request-id`` and ``x-tokenomy-model`` (the model that actually served the request)."""
    out = {"x-request-id": ctx.request_id}
    if ctx.served_model:
        out["x-tokenomy-model"] = ctx.served_model
    if ctx.deployment is not None:
        out["x-tokenomy-deployment"] = ctx.deployment.label
    confidence = ctx.decisions.get("confidence")  # a distilled student's answer
    if confidence is not None:
        out["x-tokenomy-confidence"] = str(confidence)
    if ctx.cache != "none":
        out["x-tokenomy-cache"] = ctx.cache
        similarity = ctx.decisions.get("cache_similarity")
        if similarity is not None:
            out["x-tokenomy-cache-similarity"] = str(similarity)
        items = ctx.decisions.get("cache_items")
        if items is not None:
            out["x-tokenomy-cache-items"] = str(items)
    return out
