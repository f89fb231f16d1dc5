"""The ``record`` stage (outermost): metrics for every request, errors included.

The usage ledger, costs and savings join this stage in a later issue; the observations it
needs (status, usage, latency, time to first token, served model) are gathered here already.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from tokenomy.errors import GatewayError
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Response, Stream, Usage
from tokenomy.telemetry import metrics


class RecordStage:
    """Observe each request's outcome once it is complete (for streams: once the stream ends)."""

    name = "record"

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        try:
            response = await call_next(ctx)
        except GatewayError as exc:
            ctx.status, ctx.error_type = exc.status, exc.type
            finish(ctx)
            raise
        except asyncio.CancelledError:
            ctx.status, ctx.error_type = 499, "client_disconnected"
            finish(ctx)
            raise
        if isinstance(response, Completion):
            ctx.usage = response.usage or Usage.from_openai(response.body.get("usage"))
            finish(ctx)
            return response
        return Stream(_observe(ctx, response.chunks), response.aclose)


async def _observe(ctx: CallContext, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Pass chunks through, noting the first token and the usage chunk, and finish at the end."""
    try:
        async for chunk in chunks:
            if ctx.first_token_at is None and chunk.get("choices"):
                ctx.mark_first_token()
            usage = chunk.get("usage")
            if usage:
                ctx.usage = Usage.from_openai(usage) or ctx.usage
            yield chunk
    except GatewayError as exc:
        ctx.status, ctx.error_type = exc.status, exc.type
        raise
    except (asyncio.CancelledError, GeneratorExit):
        ctx.status, ctx.error_type = 499, "client_disconnected"
        raise
    finally:
        finish(ctx)


_children: dict[tuple[str, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """Cached ``metric.labels(*labels)``: the lookup is the costly part of an observation."""
    key = (metric._name, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def finish(ctx: CallContext) -> None:
    """Record the request's metrics (called exactly once per request)."""
    if ctx.decisions.get("_recorded"):
        return
    ctx.decisions["_recorded"] = True
    endpoint = ctx.endpoint.value
    model = ctx.served_model or ctx.model if ctx.logical_model is not None else "unknown"
    provider = ctx.deployment.provider if ctx.deployment is not None else "none"
    status = _status_class(ctx.status)
    _child(metrics.REQUESTS, endpoint, model, provider, status).inc()
    _child(metrics.LATENCY, endpoint, model).observe(time.perf_counter() - ctx.started)
    ttft = ctx.ttft
    if ttft is not None:
        _child(metrics.TTFT, endpoint, model).observe(ttft)
    usage = ctx.usage
    if usage is not None:
        if usage.prompt_tokens:
            _child(metrics.TOKENS, model, "input").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            _child(metrics.TOKENS, model, "output").inc(usage.completion_tokens)


def _status_class(status: int) -> str:
    if status == 499:
        return "499"
    return f"{status // 100}xx"
