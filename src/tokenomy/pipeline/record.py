"""The ``record`` stage (outermost): every request, errors included, is measured and handed to
the usage ledger.

On the request path this stage only observes (status, usage, first token, streamed text) and
counts the request and its latency; costs, token counting and storage happen on the ledger
writer's thread (see ``tokenomy.ledger.writer``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from tokenomy.errors import GatewayError
from tokenomy.pipeline import finish_reason
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Response, Stream, Usage
from tokenomy.telemetry import metrics
from tokenomy.telemetry.labels import TaskLabels


class Sink(Protocol):
    """Where finished requests go (the ledger writer)."""

    def submit(self, ctx: CallContext) -> None:
        """Take a finished request; must not block."""


class RecordStage:
    """Observe each request's outcome once it is complete (for streams: once the stream ends)."""

    name = "record"

    def __init__(
        self, sink: Sink, tasks: TaskLabels, keep_answers: bool = False, stopping: Callable[[], bool] = lambda: False
    ) -> None:
        self._sink = sink
        self._tasks = tasks
        self._stopping = stopping
        self._keep_answers = keep_answers  # ledger.store_prompts: the ledger stores the answer's text

    def _cancelled(self, ctx: CallContext) -> None:
        """A cancelled request: the client went away, or the shutdown deadline cut it short."""
        if self._stopping():
            ctx.status, ctx.error_type = 503, "shutdown"
        else:
            ctx.status, ctx.error_type = 499, "client_disconnected"

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        try:
            response = await call_next(ctx)
        except GatewayError as exc:
            ctx.status, ctx.error_type = exc.status, exc.type
            self.finish(ctx)
            raise
        except asyncio.CancelledError:
            self._cancelled(ctx)
            self.finish(ctx)
            raise
        except Exception:  # a bug: the client gets a 500; the request still gets its row and settles
            ctx.status, ctx.error_type = 500, "server_error"
            self.finish(ctx)
            raise
        if isinstance(response, Completion):
            ctx.usage = response.usage or Usage.from_openai(response.body.get("usage"))
            ctx.finish_reason = finish_reason.of_body(response.body)
            if self._keep_answers:
                ctx.response_body = response.body
            if ctx.usage is None:
                ctx.streamed_text = _completion_text(response.body)  # counted by the ledger
            self.finish(ctx)
            return response
        return Stream(self._observe(ctx, response.chunks), response.aclose)

    async def _observe(self, ctx: CallContext, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """Pass chunks through, noting the first token, the text and the usage; finish at the end."""
        text: list[str] = []
        ctx.streamed_text = text
        try:
            async for chunk in chunks:
                choices = chunk.get("choices")
                if choices:
                    if ctx.first_token_at is None:
                        ctx.mark_first_token()
                    reason = _collect(choices, text)
                    if reason is not None:
                        ctx.finish_reason = finish_reason.merge(ctx.finish_reason, reason)
                elif "type" in chunk:  # a native Messages or Responses API event
                    ctx.finish_reason = finish_reason.merge(ctx.finish_reason, finish_reason.of_event(chunk))
                usage = chunk.get("usage")
                if usage and "type" not in chunk:  # a chat chunk (for native events the provider sets it)
                    ctx.usage = Usage.from_openai(usage) or ctx.usage
                yield chunk
        except GatewayError as exc:
            ctx.status, ctx.error_type = exc.status, exc.type
            raise
        except (asyncio.CancelledError, GeneratorExit):
            self._cancelled(ctx)
            raise
        except Exception:
            ctx.status, ctx.error_type = 500, "server_error"
            raise
        finally:
            self.finish(ctx)

    def finish(self, ctx: CallContext) -> None:
        """Count the request and hand it to the ledger (exactly once per request)."""
        if ctx.finished is not None:
            return
        ctx.finished = time.perf_counter()
        endpoint = ctx.endpoint.value
        model = ctx.served_model or ctx.model if ctx.logical_model is not None else "unknown"
        provider = ctx.deployment.provider if ctx.deployment is not None else "none"
        task = self._tasks(ctx.task)
        child = metrics.child
        child(metrics.REQUESTS, endpoint, model, provider, task, _status_class(ctx.status)).inc()
        child(metrics.LATENCY, endpoint, model, task).observe(ctx.finished - ctx.started)
        ttft = ctx.ttft
        if ttft is not None:
            child(metrics.TTFT, endpoint, model, task).observe(ttft)
        self._sink.submit(ctx)


def _collect(choices: Any, text: list[str]) -> str | None:
    """Append the chunk's text to ``text``; returns the chunk's finish reason, if it carries one."""
    reason: str | None = None
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(piece, str):
            text.append(piece)
        if choice.get("finish_reason"):
            reason = finish_reason.merge(reason, finish_reason.of_choices([choice]))
    return reason


def _completion_text(body: dict[str, Any]) -> list[str]:
    text: list[str] = []
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            piece = message.get("content") if isinstance(message, dict) else choice.get("text")
            if isinstance(piece, str):
                text.append(piece)
    return text


def _status_class(status: int) -> str:
    if status == 499:
        return "499"
    return f"{status // 100}xx"
