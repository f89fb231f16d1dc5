"""Pure request/response translation for OpenAI-compatible upstreams (no I/O).

The gateway's internal shape *is* the OpenAI shape, so translation is small: swap the model
for the upstream's id, ask for usage on streams, and parse what comes back strictly.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenomy.pipeline.context import Endpoint

PATHS: dict[Endpoint, str] = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.IMAGES: "/images/generations",
    Endpoint.TRANSCRIPTIONS: "/audio/transcriptions",
    Endpoint.SPEECH: "/audio/speech",
    Endpoint.MODERATIONS: "/moderations",
    Endpoint.RERANK: "/rerank",
}


class MalformedUpstream(ValueError):
    """The upstream answered with something that is not the OpenAI wire format."""


def request_body(body: dict[str, Any], upstream_model: str, stream: bool, ask_usage: bool = True) -> bytes:
    """The upstream request: the client's body with the upstream model id.

    Streams always ask for a usage chunk, so tokens are known even when the client did not ask
    (the HTTP edge drops that chunk again for such clients). With ``ask_usage`` false (hosts that
    refuse ``stream_options`` and report usage on their own), ``stream_options`` is left out.
    """
    out = {**body, "model": upstream_model}
    if not ask_usage:
        out.pop("stream_options", None)
    elif stream:
        options = body.get("stream_options")
        out["stream_options"] = (
            {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
        )
    return orjson.dumps(out)


def parse_response(raw: bytes) -> dict[str, Any]:
    """A whole response body; raises :class:`MalformedUpstream` when it is not a JSON object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedUpstream("Upstream returned a body that is not JSON.") from None
    if not isinstance(data, dict):
        raise MalformedUpstream("Upstream returned JSON that is not an object.")
    return data


def parse_chunk(data: str) -> dict[str, Any] | None:
    """One SSE ``data`` payload: a chunk dict, or ``None`` for the ``[DONE]`` sentinel."""
    if data == "[DONE]":
        return None
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedUpstream("Upstream sent a malformed stream chunk (not JSON).") from None
    if not isinstance(chunk, dict):
        raise MalformedUpstream("Upstream sent a stream chunk that is not a JSON object.")
    error = chunk.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise MalformedUpstream(f"Upstream reported an error mid-stream: {message}")
    return chunk


def is_final(chunk: dict[str, Any]) -> bool:
    """True when a chunk carries a ``finish_reason`` (the answer is complete)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    return any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
