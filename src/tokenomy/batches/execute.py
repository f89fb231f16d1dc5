"""One batch request through the pipeline, turned into an output- or error-file result."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tokenomy.batches import shapes
from tokenomy.batches.store import Item
from tokenomy.errors import GatewayError, internal_error
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Endpoint
from tokenomy.server import schemas
from tokenomy.server.context import task_tag

log = logging.getLogger("tokenomy.batches")

ENDPOINTS: dict[str, tuple[Endpoint, type[Any]]] = {
    "/v1/chat/completions": (Endpoint.CHAT, schemas.ChatCompletionRequest),
    "/v1/completions": (Endpoint.COMPLETIONS, schemas.CompletionRequest),
    "/v1/embeddings": (Endpoint.EMBEDDINGS, schemas.EmbeddingRequest),
}
_RETRY_STATUSES = (429, 503)
_MAX_RETRIES = 5


async def execute(
    chain: Handler, endpoint_url: str, batch_id: str, item: Item, tenant: str, key_name: str | None
) -> tuple[bool, dict[str, Any]]:
    """Run ``item``; ``(ok, {"response", "error"})``. 429 and 503 are retried after a pause.

    The request id is the item's output-line id, so a request run again after a restart carries
    the same id in the ledger as its first attempt.
    """
    endpoint, schema = ENDPOINTS[endpoint_url]
    body = item.request or {}
    request_id = shapes.output_line(batch_id, item.line, item.custom_id, {})["id"]
    for attempt in range(_MAX_RETRIES + 1):
        try:
            schemas.validate(body, schema)
            if body.get("stream"):
                raise GatewayError(400, "Batch requests cannot be streamed.", param="stream")
            ctx = CallContext(
                request_id=request_id if not attempt else f"{request_id}_r{attempt}",
                endpoint=endpoint,
                body=dict(body),
                model=body["model"],
                headers={},
                tenant=tenant,
                api_key_name=key_name,
                task=task_tag({}, body),
            )
            ctx.decisions["batch"] = batch_id
            response = await chain(ctx)
            if not isinstance(response, Completion):  # pragma: no cover - stream was refused above
                raise internal_error()
            return True, _response(200, request_id, response.body)
        except GatewayError as exc:
            if exc.status in _RETRY_STATUSES and attempt < _MAX_RETRIES:
                await asyncio.sleep(_retry_after(exc, attempt))
                continue
            return False, _response(exc.status, request_id, exc.openai_body())
        except Exception:
            log.exception("batch %s line %d failed", batch_id, item.line)
            return False, _response(500, request_id, internal_error().openai_body())
    raise AssertionError("unreachable")  # pragma: no cover


def _response(status: int, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"response": {"status_code": status, "request_id": request_id, "body": body}, "error": None}


def _retry_after(exc: GatewayError, attempt: int) -> float:
    try:
        return min(30.0, float(str(exc.headers.get("retry-after", ""))))
    except ValueError:
        return min(30.0, 0.5 * float(2**attempt))
