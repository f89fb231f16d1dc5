"""The Responses API: ``POST /v1/responses``, ``GET|DELETE /v1/responses/{id}`` and
``GET /v1/responses/{id}/input_items``.

A create request runs through the same stage chain as every other model call (keys, budgets,
routing, cache, ledger). Its chat translation is what the stages read; a deployment that speaks
the Responses API natively gets the request as it is (``ctx.native``). The answer comes back as
a ``response`` object or the Responses event stream, whichever shape the provider produced.
With ``store`` (the API's default) the gateway keeps the response and its input items per
tenant (``tokenomy.state.responses``), so ``previous_response_id`` works on any deployment.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from tokenomy.errors import GatewayError, invalid_request, not_found
from tokenomy.gateway import Gateway
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, NativeRequest, Response
from tokenomy.pipeline.guard import GuardStage
from tokenomy.server import schemas
from tokenomy.server.asgi import Request, encode_headers, end_stream, send_events, send_json, start_sse
from tokenomy.server.context import new_context, response_headers, stream_failure, task_tag
from tokenomy.server.responses_events import Event, ResponsesStreamEncoder, events_from_response, response_from_chat
from tokenomy.server.responses_wire import InvalidResponsesRequest, check_request, new_id, normalize_items, to_chat
from tokenomy.state.responses import ResponseStoreUnavailable

log = logging.getLogger("tokenomy.server")

PREFIX = "/v1/responses/"
_WHOLE_EVENTS = frozenset({"response.created", "response.in_progress", "response.completed",
                           "response.incomplete", "response.failed", "response.queued"})  # fmt: skip


async def create(gw: Gateway, req: Request) -> None:
    """``POST /v1/responses``."""
    data = await schemas.read_json(req, gw.config.server)
    try:
        body = check_request(data)
        items = normalize_items(body.get("input"))
    except InvalidResponsesRequest as exc:
        raise invalid_request(str(exc), param=exc.param) from None
    native = {k: v for k, v in body.items() if k != "previous_response_id"}
    previous = body.get("previous_response_id")
    if previous:
        stored = await _lookup(gw, await _tenant(gw, req), previous, "previous_response_id")
        history = [*stored.items, *(i for i in stored.response.get("output") or () if isinstance(i, dict))]
        items = history + items
        native["input"] = [_native_item(item) for item in items]
    if not items:
        raise invalid_request("'input' must hold at least one item.", param="input")
    chat, problems = to_chat(body, items)
    schemas.validate(chat, schemas.ChatCompletionRequest)
    ctx = new_context(req, Endpoint.CHAT, chat, wire="responses")
    ctx.task = task_tag(req.headers, body)
    ctx.native = NativeRequest("responses", native, tuple(problems))
    req.watch_disconnect()
    response = await gw.handle(ctx)
    await _send(gw, req, ctx, body, items, response)


async def by_id(gw: Gateway, req: Request) -> None:
    """``GET|DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``."""
    response_id, _, rest = req.path[len(PREFIX) :].partition("/")
    if not response_id or rest not in ("", "input_items") or (rest and req.method != "GET"):
        raise not_found(f"Unknown path {req.path!r}.", code="unknown_url")
    tenant = await _tenant(gw, req)
    headers = encode_headers({"x-request-id": req.request_id})
    if req.method == "DELETE":
        try:
            deleted = await gw.responses.delete(tenant, response_id)
        except ResponseStoreUnavailable as exc:
            raise _unavailable(exc) from None
        if not deleted:
            raise _missing(response_id, "response_id")
        await send_json(req.send, 200, {"id": response_id, "object": "response.deleted", "deleted": True}, headers)
        return
    stored = await _lookup(gw, tenant, response_id, "response_id")
    if not rest:
        await send_json(req.send, 200, stored.response, headers)
        return
    await send_json(req.send, 200, _page(stored.items, parse_qs(req.query or "")), headers)


# -- helpers --------------------------------------------------------------------------------------


async def _tenant(gw: Gateway, req: Request) -> str:
    """The caller's tenant, authenticated as for model calls (open gateway: ``default``)."""
    guard = next((s for s in gw.stages if isinstance(s, GuardStage)), None)
    if guard is None or not guard.enabled:
        return "default"
    return (await guard.authenticate(req.headers)).tenant


def _missing(response_id: str, param: str) -> GatewayError:
    return not_found(f"No response found with id {response_id!r}.", param=param, code="response_not_found")


def _unavailable(exc: Exception) -> GatewayError:
    return GatewayError(503, f"The response store is unavailable ({exc}); retry shortly.", "server_error",
                        code="store_unavailable", headers={"retry-after": "1"})  # fmt: skip


async def _lookup(gw: Gateway, tenant: str, response_id: str, param: str) -> Any:
    try:
        stored = await gw.responses.get(tenant, response_id)
    except ResponseStoreUnavailable as exc:
        raise _unavailable(exc) from None
    if stored is None:
        raise _missing(response_id, param)
    if stored.expired:
        days = gw.config.responses.retention_s / 86_400
        raise not_found(
            f"The response {response_id!r} has expired (responses are kept {days:g} days).",
            param=param,
            code="response_expired",
        )
    return stored


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    order = (query.get("order") or ["desc"])[-1]
    if order not in ("asc", "desc"):
        raise invalid_request("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    try:
        limit = int((query.get("limit") or ["20"])[-1])
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise invalid_request("Invalid 'limit': expected an integer between 1 and 100.", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = query["after"][-1] if query.get("after") else None
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise invalid_request(f"Invalid 'after': no input item {after!r}.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": len(ordered) > limit,
    }


def _native_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item as Responses input: input messages carry no ``id`` there."""
    if item.get("type") == "message" and item.get("role") != "assistant":
        return {k: v for k, v in item.items() if k not in ("id", "status")}
    return item


async def _remember(
    gw: Gateway, ctx: CallContext, body: dict[str, Any], items: list[Any], response: dict[str, Any]
) -> None:
    if body.get("store") is False or response.get("status") not in ("completed", "incomplete"):
        return
    try:
        await gw.responses.put(ctx.tenant, response, items)
    except ResponseStoreUnavailable:  # the answer still reaches the client
        log.exception("storing response %s failed (request %s)", response.get("id"), ctx.request_id)


def _patched(native: dict[str, Any], request: dict[str, Any], name: str) -> dict[str, Any]:
    """A native ``response`` with the model name the client asked for and the id it continued from
    (the gateway resolved ``previous_response_id`` itself; the upstream never saw it)."""
    out = {**native, "model": name}
    if request.get("previous_response_id"):
        out["previous_response_id"] = request["previous_response_id"]
    return out


def _whole(body: dict[str, Any], request: dict[str, Any], name: str) -> dict[str, Any]:
    """A pipeline answer (native ``response`` or chat completion) as the ``response`` object to send."""
    if body.get("object") == "response":
        return _patched(body, request, name)
    return response_from_chat(body, request, new_id("resp"), name)


async def _send(
    gw: Gateway, req: Request, ctx: CallContext, body: dict[str, Any], items: list[Any], response: Response
) -> None:
    headers = encode_headers(response_headers(ctx))
    name = ctx.requested_model
    if isinstance(response, Completion):
        answer = _whole(response.body, body, name)
        await _remember(gw, ctx, body, items, answer)
        req.responded = True
        await send_json(req.send, 200, answer, headers)
        return
    send = req.send
    encoder: ResponsesStreamEncoder | None = None
    final: dict[str, Any] | None = None
    started = False
    last_seq = -1
    try:
        async for chunk in response.chunks:
            events: list[Event]
            if "choices" in chunk:  # a chat chunk: translate
                encoder = encoder or ResponsesStreamEncoder(body, new_id("resp"), name)
                events = encoder.feed(chunk)
            elif chunk.get("object") == "response":  # a whole answer (a cache hit)
                final = _whole(chunk, body, name)
                events = events_from_response(final)
            else:  # a native event: pass it on, with the model name the client asked for
                kind = str(chunk.get("type") or "")
                if kind in _WHOLE_EVENTS and isinstance(chunk.get("response"), dict):
                    chunk = {**chunk, "response": _patched(chunk["response"], body, name)}
                    if kind != "response.created" and kind != "response.in_progress":
                        final = chunk["response"]
                events = [(kind, chunk)]
            if not events:
                continue
            for _event, data in events:
                last_seq = max(last_seq, int(data.get("sequence_number") or 0))
            if not started:
                await start_sse(send, headers)
                started = True
            await send_events(send, events)  # the events one chunk makes, in one write
        if encoder is not None:
            tail = encoder.finish()
            final = encoder.response
        else:
            tail = []
    except Exception as exc:
        if not started:
            raise
        exc = stream_failure(exc, ctx)
        if encoder is not None:
            tail = encoder.error(exc.code or exc.type, exc.message, exc.param)
        else:
            error = {"type": "error", "sequence_number": last_seq + 1, "code": exc.code or exc.type,
                     "message": exc.message, "param": exc.param}  # fmt: skip
            tail = [("error", error)]
        final = None
    if final is not None:
        await _remember(gw, ctx, body, items, final)
    if not started:
        await start_sse(send, headers)
    req.responded = True
    await end_stream(send, events=tail)  # the closing events and the end of the body in one write
