"""``POST /v1/messages``: the Anthropic Messages API inbound, served by any model.

The request is translated to the internal (OpenAI) shape, runs through the same stage chain
as every other request, and the answer is translated back into Anthropic's format or events.
"""

from __future__ import annotations

import logging
import secrets

import orjson

from tokenomy.errors import GatewayError, internal_error, invalid_request
from tokenomy.gateway import Gateway
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response
from tokenomy.server import anthropic_wire, schemas
from tokenomy.server.asgi import Request, encode_headers, end_stream, send_event, send_json, start_sse
from tokenomy.server.context import new_context, response_headers

log = logging.getLogger("tokenomy.server")


async def messages(gw: Gateway, req: Request) -> None:
    """Serve one Messages API request."""
    data = await schemas.read_json(req, gw.config.server)
    try:
        body = anthropic_wire.messages_request_to_openai(data)
    except anthropic_wire.InvalidMessagesRequest as exc:
        raise invalid_request(str(exc), param=exc.param) from None
    schemas.validate(body, schemas.ChatCompletionRequest)
    ctx = new_context(req, Endpoint.CHAT, body, wire="anthropic")
    req.watch_disconnect()
    response = await gw.handle(ctx)
    await _send(req, ctx, response)


async def _send(req: Request, ctx: CallContext, response: Response) -> None:
    headers = encode_headers(response_headers(ctx))
    if isinstance(response, Completion):
        req.responded = True
        await send_json(req.send, 200, anthropic_wire.openai_response_to_messages(response.body, ctx.model), headers)
        return
    encoder = anthropic_wire.MessagesStreamEncoder(ctx.model, "msg_" + secrets.token_hex(12))
    send = req.send
    started = False
    try:
        async for chunk in response.chunks:
            for event, data in encoder.feed(chunk):
                if not started:
                    await start_sse(send, headers)
                    started = True
                await send_event(send, orjson.dumps(data), event.encode())
        events = encoder.finish()
    except Exception as exc:
        if not started:
            raise
        if not isinstance(exc, GatewayError):
            log.exception("stream failed (request %s)", ctx.request_id)
            exc = internal_error()
        body = exc.anthropic_body()
        events = [anthropic_wire.error_event(body["error"]["type"], body["error"]["message"])]
    if not started:
        await start_sse(send, headers)
    req.responded = True
    for event, data in events:
        await send_event(send, orjson.dumps(data), event.encode())
    await end_stream(send)
