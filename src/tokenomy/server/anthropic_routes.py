"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Anthropic Messages API inbound.

The request is translated to the internal (OpenAI) shape, which every stage reads, and runs
through the same stage chain as every other request. An Anthropic deployment gets the request
as it is (``ctx.native``: cache_control, thinking, system blocks, documents, betas all kept) and
its answer comes back untouched; any other deployment gets the translation, and the answer is
translated back into Anthropic's format or events.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from tokenomy.errors import GatewayError, invalid_request
from tokenomy.gateway import Gateway
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, NativeRequest, Response
from tokenomy.pipeline.guard import GuardStage
from tokenomy.server import anthropic_wire, schemas
from tokenomy.server.anthropic_wire_stream import events_from_message
from tokenomy.server.asgi import Request, encode_headers, end_stream, send_events, send_json, start_sse
from tokenomy.server.context import new_context, response_headers, stream_failure
from tokenomy.tokens.count import TokenCounter, count_prompt

log = logging.getLogger("tokenomy.server")

COUNT_HEADER = "x-tokenomy-token-count"
"""``exact`` (counted by the Anthropic upstream) or ``estimated`` (counted here with a tokenizer)."""
_COUNTER = TokenCounter()


def _translate(data: Any) -> tuple[dict[str, Any], list[anthropic_wire.Problem]]:
    problems: list[anthropic_wire.Problem] = []
    try:
        body = anthropic_wire.messages_request_to_openai(data, problems)
    except anthropic_wire.InvalidMessagesRequest as exc:
        raise invalid_request(str(exc), param=exc.param) from None
    return body, problems + anthropic_wire.untranslated(data)


async def messages(gw: Gateway, req: Request) -> None:
    """Serve one Messages API request."""
    data = await schemas.read_json(req, gw.config.server)
    body, problems = _translate(data)
    schemas.validate(body, schemas.ChatCompletionRequest)
    ctx = new_context(req, Endpoint.CHAT, body, wire="anthropic")
    ctx.native = NativeRequest("anthropic", data, tuple(problems))
    req.watch_disconnect()
    response = await gw.handle(ctx)
    await _send(req, ctx, response)


async def count_tokens(gw: Gateway, req: Request) -> None:
    """``POST /v1/messages/count_tokens``: exact from an Anthropic deployment, else counted here."""
    data = await schemas.read_json(req, gw.config.server)
    if isinstance(data, dict) and "max_tokens" not in data:
        data = {**data, "max_tokens": 1}  # not part of a count request; the translation wants one
    body, _problems = _translate(data)
    guard = next((s for s in gw.stages if isinstance(s, GuardStage)), None)
    if guard is not None and guard.enabled:
        key = await guard.authenticate(req.headers)
        if key.models and body["model"] not in key.models:
            raise GatewayError(403, f"key {key.name!r} may not use model {body['model']!r}", "permission_error")
    model = gw.table.resolve(body["model"])
    deployment = model.deployments[0]
    provider = gw.providers[deployment.provider]
    counter = getattr(provider, "count_tokens", None)
    if counter is not None:
        upstream = {k: v for k, v in data.items() if k not in ("max_tokens", "stream")}
        tokens, how = await counter(upstream, req.headers, deployment), "exact"
    else:
        # tiktoken (the model's own OpenAI encoding, else cl100k_base); never the embedded model's GGUF
        # vocabulary, which a module-level counter would keep loaded until the interpreter exits
        encode, _source = _COUNTER.counter_for(deployment.model, None)
        tokens, how = count_prompt(encode, "chat", body), "estimated"
    headers = encode_headers({"x-request-id": req.request_id, COUNT_HEADER: how, "x-tokenomy-model": model.name})
    await send_json(req.send, 200, {"input_tokens": tokens}, headers)


async def _send(req: Request, ctx: CallContext, response: Response) -> None:
    headers = encode_headers(response_headers(ctx))
    name = ctx.requested_model
    if isinstance(response, Completion):
        req.responded = True
        body = response.body
        message = {**body, "model": name} if body.get("type") == "message" else (
            anthropic_wire.openai_response_to_messages(body, name)
        )  # fmt: skip
        await send_json(req.send, 200, message, headers)
        return
    encoder = anthropic_wire.MessagesStreamEncoder(name, "msg_" + secrets.token_hex(12))
    translated = False
    send = req.send
    started = False
    try:
        async for chunk in response.chunks:
            if "choices" in chunk:  # a chat chunk: translate
                translated = True
                events = encoder.feed(chunk)
            elif chunk.get("type") == "message":  # a whole native answer (a cache hit)
                events = events_from_message({**chunk, "model": name})
            else:  # a native event: as it came, with the model name the client asked for
                if chunk.get("type") == "message_start" and isinstance(chunk.get("message"), dict):
                    chunk = {**chunk, "message": {**chunk["message"], "model": name}}
                events = [(str(chunk.get("type")), chunk)]
            if events:  # the events one chunk makes (the first chunk's three, say) go in one write
                if not started:
                    await start_sse(send, headers)
                    started = True
                await send_events(send, events)
        events = encoder.finish() if translated else []
    except Exception as exc:
        if not started:
            raise
        exc = stream_failure(exc, ctx)
        body = exc.anthropic_body()
        events = [anthropic_wire.error_event(body["error"]["type"], body["error"]["message"])]
    if not started:
        await start_sse(send, headers)
    req.responded = True
    await end_stream(send, events=events)  # the closing events and the end of the body in one write
