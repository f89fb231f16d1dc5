"""Endpoints passed through to OpenAI-compatible deployments: ``/v1/images/generations``,
``/v1/audio/transcriptions`` (multipart), ``/v1/audio/speech`` (audio back), ``/v1/moderations``
and ``/v1/rerank`` (the Cohere/Jina shape, as vLLM and Jina serve it).

They run through the same stage chain as model calls (keys, budgets, rate limits, routing,
the ledger); they are never cached. Only what is needed to route and account is checked here;
the upstream judges the rest and its errors come back with its message.
"""

from __future__ import annotations

from typing import Any

from tokenomy.errors import invalid_request
from tokenomy.gateway import Gateway
from tokenomy.pipeline.context import BINARY, Completion, Endpoint, NativeRequest
from tokenomy.server import schemas
from tokenomy.server.asgi import JSON, Request, encode_headers, send_bytes, send_json
from tokenomy.server.context import new_context, response_headers

#: Fields each JSON endpoint requires, with their JSON type.
_REQUIRED: dict[Endpoint, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    Endpoint.IMAGES: (("prompt", str),),
    Endpoint.SPEECH: (("input", str), ("voice", (str, dict))),
    Endpoint.MODERATIONS: (("input", (str, list)),),
    Endpoint.RERANK: (("query", str), ("documents", list)),
}


def _check(endpoint: Endpoint, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid_request("The request body must be a JSON object.")
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise invalid_request("Missing required parameter: 'model'.", param="model")
    for field, kind in _REQUIRED[endpoint]:
        if not isinstance(data.get(field), kind) or (field == "documents" and not data[field]):
            raise invalid_request(f"Missing or invalid required parameter: '{field}'.", param=field)
    for field in ("stream", "stream_format"):
        if data.get(field) not in (None, False, "audio"):
            raise invalid_request(f"'{field}' is not supported through the gateway on this endpoint.", param=field)
    return data


async def _run(gw: Gateway, req: Request, endpoint: Endpoint, body: dict[str, Any], native: Any = None) -> None:
    ctx = new_context(req, endpoint, body)
    ctx.native = native
    req.watch_disconnect()
    response = await gw.handle(ctx)
    assert isinstance(response, Completion)  # these endpoints never stream
    headers = response_headers(ctx)
    req.responded = True
    answer = response.body
    if answer.get("object") == BINARY:
        assert response.raw is not None
        await send_bytes(req.send, 200, response.raw, str(answer["content_type"]).encode(), encode_headers(headers))
    elif "model" in answer and answer["model"] != ctx.requested_model:
        await send_json(req.send, 200, {**answer, "model": ctx.requested_model}, encode_headers(headers))
    elif response.raw is not None:
        await send_bytes(req.send, 200, response.raw, JSON, encode_headers(headers))
    else:
        await send_json(req.send, 200, answer, encode_headers(headers))


def json_endpoint(endpoint: Endpoint) -> Any:
    """The handler of a JSON pass-through endpoint."""

    async def handler(gw: Gateway, req: Request) -> None:
        data = _check(endpoint, await schemas.read_json(req, gw.config.server))
        await _run(gw, req, endpoint, data)

    handler.__doc__ = f"``POST`` for the {endpoint.value} endpoint."
    return handler


async def transcriptions(gw: Gateway, req: Request) -> None:
    """``POST /v1/audio/transcriptions``: a multipart form with the audio ``file``."""
    content_type = req.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise invalid_request("Send the audio as multipart/form-data (the 'file' field).", param="file")
    from email.parser import BytesParser  # only when a transcription arrives
    from email.policy import HTTP

    raw = await req.body(gw.config.server.max_body_bytes)
    form = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    files: list[tuple[str, str, str, bytes]] = []
    for part in form.iter_parts() if form.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files.append((name, filename, part.get_content_type(), data))
        elif name.endswith("[]"):
            fields.setdefault(name, []).append(data.decode())
        else:
            fields[name] = data.decode()
    if not any(name == "file" for name, *_ in files):
        raise invalid_request("Missing required parameter: 'file'.", param="file")
    if not fields.get("model"):
        raise invalid_request("Missing required parameter: 'model'.", param="model")
    if fields.pop("stream", "false") != "false":
        raise invalid_request("'stream' is not supported through the gateway on this endpoint.", param="stream")
    await _run(gw, req, Endpoint.TRANSCRIPTIONS, fields, NativeRequest("multipart", {"files": files}))
