"""Endpoints forwarded as they are to OpenAI-compatible upstreams: images, audio, moderations, rerank.

The request goes up with only the model id swapped (JSON, or a multipart form for audio
transcriptions); the answer comes back byte for byte with its content type. Only the token
usage, where the answer reports one, is read (for the ledger and budgets).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from tokenomy.config.models import Deployment
from tokenomy.pipeline.context import BINARY, CallContext, Completion, Endpoint, Usage
from tokenomy.providers.http_pool import HttpPool, read_body


def multipart(fields: dict[str, Any], files: list[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """``(body, content type)`` of a multipart/form-data request."""
    boundary = f"tokenomy-{secrets.token_hex(16)}"
    out = bytearray()
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{item}\r\n'.encode()
    for name, filename, content_type, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        out += f"{head}Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def usage_of(endpoint: Endpoint, body: dict[str, Any]) -> Usage | None:
    """Token usage where the answer reports it (rerank: total tokens or Cohere's billed units)."""
    usage = body.get("usage")
    if endpoint is Endpoint.RERANK:
        units = ((body.get("meta") or {}).get("billed_units") or {}).get("search_units")
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        value = total if isinstance(total, int) else units
        return Usage(prompt_tokens=value) if isinstance(value, int) else None
    return Usage.from_openai(usage)


async def forward(pool: HttpPool, url: str, ctx: CallContext, deployment: Deployment) -> Completion:
    """POST the request upstream (model swapped) and return the answer untouched."""
    fields = {**ctx.body, "model": deployment.model}
    native = ctx.native
    if native is not None and native.wire == "multipart":
        data, content_type = multipart(fields, native.body["files"])
        resp = await pool.post(url, data, deployment, {"content-type": content_type})
    else:
        resp = await pool.post(url, orjson.dumps(fields), deployment)
    content_type = resp.content_type
    raw = await read_body(resp, deployment)
    if content_type == "application/json":
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            return Completion(body, usage_of(ctx.endpoint, body), raw)
    return Completion({"object": BINARY, "content_type": content_type or "application/octet-stream"}, None, raw)
