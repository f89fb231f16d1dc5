"""The OpenAI-compatible endpoints: chat completions, completions, embeddings and models."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from tokenomy.errors import GatewayError
from tokenomy.gateway import Gateway
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response
from tokenomy.pipeline.guard import GuardStage
from tokenomy.pricing.prices import configured_kind
from tokenomy.server import schemas
from tokenomy.server.asgi import JSON, Request, encode_headers, end_stream, send_bytes, send_event, send_json, start_sse
from tokenomy.server.context import new_context, response_headers, stream_failure

log = logging.getLogger("tokenomy.server")

_DONE = b"[DONE]"


async def chat_completions(gw: Gateway, req: Request) -> None:
    """``POST /v1/chat/completions``."""
    data = await schemas.read_json(req, gw.config.server)
    schemas.validate(data, schemas.ChatCompletionRequest)
    await _serve(gw, req, new_context(req, Endpoint.CHAT, data))


async def completions(gw: Gateway, req: Request) -> None:
    """``POST /v1/completions``."""
    data = await schemas.read_json(req, gw.config.server)
    request = schemas.validate(data, schemas.CompletionRequest)
    schemas.check_prompt(request.prompt)
    await _serve(gw, req, new_context(req, Endpoint.COMPLETIONS, data))


async def embeddings(gw: Gateway, req: Request) -> None:
    """``POST /v1/embeddings``."""
    data = await schemas.read_json(req, gw.config.server)
    request = schemas.validate(data, schemas.EmbeddingRequest)
    schemas.check_embedding_input(request.input)
    if data.get("stream"):
        raise GatewayError(400, "Embeddings cannot be streamed.", param="stream")
    await _serve(gw, req, new_context(req, Endpoint.EMBEDDINGS, data))


async def list_models(gw: Gateway, req: Request) -> None:
    """``GET /v1/models``: the names the caller's key may ask for (every name when keys are off).

    Each entry says how its requests are priced: ``configured``, ``database`` (genai-prices),
    ``default`` (embedded models at the default machine cost) or ``unknown`` (recorded at $0).
    """
    names = gw.table.names
    guard = next((s for s in gw.stages if isinstance(s, GuardStage)), None)
    if guard is not None and guard.enabled:
        key = await guard.authenticate(req.headers)  # 401 without a valid key, as for every model call
        if key.models:
            names = [name for name in names if name in key.models]
    created = int(gw.started_at)
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "tokenomy", "pricing": _pricing(gw, name)}
        for name in names
    ]
    local = _local_metadata(gw)
    for entry in data:
        if entry["id"] in local:
            entry["tokenomy"] = local[entry["id"]]
    await send_json(req.send, 200, {"object": "list", "data": data})


def _pricing(gw: Gateway, name: str) -> str:
    """The weakest price kind among the model's deployments (routers: ``router``)."""
    model = next((m for m in gw.config.models if name == m.name or name in m.aliases), None)
    if model is None:
        return "router"
    kinds = {configured_kind(dep, gw.config.local.cost_per_hour) for dep in model.deployments}
    return next(k for k in ("unknown", "default", "database", "configured") if k in kinds)


def _local_metadata(gw: Gateway) -> dict[str, dict[str, Any]]:
    """Per model name served by an embedded model: that model's entry (variant choice included)."""
    provider = gw.providers.get("local")
    if provider is None or not hasattr(provider, "catalog"):
        return {}
    entries = {entry["id"]: entry for entry in provider.catalog()}
    out: dict[str, dict[str, Any]] = {}
    for model in gw.config.models:
        for dep in model.deployments:
            if dep.provider == "local" and dep.model in entries:
                out.setdefault(model.name, entries[dep.model])
    return out


async def _serve(gw: Gateway, req: Request, ctx: CallContext) -> None:
    req.watch_disconnect()
    response = await gw.handle(ctx)
    await send_openai(req, ctx, response)


async def send_openai(req: Request, ctx: CallContext, response: Response) -> None:
    """Write a pipeline response in the OpenAI wire format (JSON, or SSE ending in ``[DONE]``)."""
    headers = encode_headers(response_headers(ctx))
    name = ctx.requested_model  # the response's ``model`` is the name the client asked for (docs/compatibility.md)
    if isinstance(response, Completion):
        req.responded = True
        body = response.body
        if response.raw is not None and body.get("model") == name:
            await send_bytes(req.send, 200, response.raw, JSON, headers)
        else:
            await send_json(req.send, 200, {**body, "model": name}, headers)
        return
    keep_usage = ctx.include_usage
    send = req.send
    started = False
    try:
        async for chunk in response.chunks:
            if not keep_usage and "usage" in chunk:
                if not chunk.get("choices"):
                    continue
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            if not started:
                await start_sse(send, headers)
                started = True
            chunk["model"] = name  # set and sent at once: a chunk shared with a coalesced request is safe
            await send_event(send, orjson.dumps(chunk))
    except Exception as exc:
        if not started:
            raise
        exc = stream_failure(exc, ctx)
        # Mid-stream failures end the stream with an error event (the SDKs raise on it).
        req.responded = True
        await send_event(send, orjson.dumps(exc.openai_body()))
        await end_stream(send)
        return
    finally:
        if response.aclose is not None and req.disconnected:
            await _maybe_await(response.aclose())
    if not started:
        await start_sse(send, headers)
    req.responded = True
    await end_stream(send, _DONE)  # [DONE] and the end of the body in one write


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value
