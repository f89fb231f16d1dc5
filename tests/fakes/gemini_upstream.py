"""A fake Google Gemini API (Generative Language and Vertex AI paths) on a real loopback socket.

``POST .../models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` and
``:batchEmbedContents``; the key in ``x-goog-api-key`` (Vertex AI: ``Authorization: Bearer``);
errors as Google's ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from tests.fakes.base import COMMON_MODES, FAKE_KEY, SSE, FakeServer, Reply, count_words, json_response, pieces
from tests.fakes.openai_upstream import embedding_vector

MODES = COMMON_MODES
TOOL_ARGS = {"arg": "x"}
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


class GeminiFake(FakeServer):
    """Fake Gemini; ``base_url`` is the Generative Language API root (``.../v1beta``)."""

    base_path = "/v1beta"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{target}", _dispatch)
        app.router.add_post("/v1/projects/{project}/locations/{location}/publishers/google/models/{target}", _dispatch)

    def check_auth(self, request: web.Request) -> web.StreamResponse | None:
        vertex = request.path.startswith("/v1/projects/")
        given = (request.headers.get("Authorization") or "").removeprefix("Bearer ") if vertex else (
            request.headers.get("x-goog-api-key"))  # fmt: skip
        if self.api_key is not None and given != self.api_key:
            return self.error(401 if vertex else 400, "API key not valid. Please pass a valid API key.")
        return None

    def error(self, status: int, message: str | None = None, **fields: Any) -> web.Response:
        body = {"code": status, "message": message or f"fake error {status}", "status": _STATUS.get(status, "UNKNOWN")}
        return json_response({"error": body | fields}, status)


async def start_gemini_fake(**opts: Any) -> GeminiFake:
    """Start a :class:`GeminiFake`."""
    return await GeminiFake(**opts).start()


def _text(parts: Any) -> str:
    return " ".join(str(p["text"]) for p in parts or () if isinstance(p, dict) and "text" in p)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_KEY]
    assert isinstance(fake, GeminiFake)
    body, mode = await fake.prelude(request)
    model, _, method = request.match_info["target"].partition(":")
    if not isinstance(body, dict):
        raise Reply(fake.error(400, "Invalid JSON payload received."))
    if method == "batchEmbedContents":
        return _embed(fake, body)
    if method not in ("generateContent", "streamGenerateContent"):
        raise Reply(fake.error(404, f"Method {method!r} not found."))
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Reply(fake.error(400, "* GenerateContentRequest.contents: contents is not specified"))
    last = contents[-1]
    user_texts = [_text(c.get("parts")) for c in contents if c.get("role") == "user"]
    user_text = next((t for t in reversed(user_texts) if t), "")
    prompt = count_words(_text((body.get("systemInstruction") or {}).get("parts"))) + sum(
        count_words(_text(c.get("parts"))) for c in contents
    )
    config = body.get("generationConfig") or {}
    declarations = [d for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    answering_tool = any("functionResponse" in p for p in last.get("parts") or ())
    part: dict[str, Any]
    if declarations and not answering_tool and calling.get("mode") != "NONE":
        name = (calling.get("allowedFunctionNames") or [declarations[0]["name"]])[0]
        part, finish, out_tokens = {"functionCall": {"name": name, "args": TOOL_ARGS}}, "STOP", 2
    else:
        if mode == "slow_stream":
            text = " ".join(f"tick{i}" for i in range(fake.stream_chunks))
        elif config.get("responseMimeType") == "application/json":
            props = (config.get("responseJsonSchema") or {}).get("properties") or {}
            text = json.dumps({k: user_text for k in props} if props else {"echo": user_text})
        else:
            text = f"echo: {user_text}"
        finish = "STOP"
        limit = config.get("maxOutputTokens")
        if isinstance(limit, int) and count_words(text) > limit:
            text, finish = " ".join(text.split()[:limit]), "MAX_TOKENS"
        part, out_tokens = {"text": text}, count_words(text)
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": out_tokens, "totalTokenCount": prompt + out_tokens}
    head = {"modelVersion": model, "responseId": fake.next_id("gemini-")}
    if method == "generateContent":
        candidate = {"content": {"role": "model", "parts": [part]}, "finishReason": finish, "index": 0}
        return json_response({"candidates": [candidate], "usageMetadata": usage, **head})
    if request.query.get("alt") != "sse":
        raise Reply(fake.error(400, "this fake streams Server-Sent Events only (alt=sse)"))
    bits = [{"text": p} for p in pieces(part["text"])] if "text" in part else [part]
    events: list[tuple[str | None, Any]] = []
    for i, bit in enumerate(bits):
        candidate = {"content": {"role": "model", "parts": [bit]}, "index": 0}
        if i == len(bits) - 1:
            candidate["finishReason"] = finish
        events.append((None, {"candidates": [candidate], "usageMetadata": usage if i == len(bits) - 1 else
                              {"promptTokenCount": prompt}, **head}))  # fmt: skip
    return await SSE(fake, request).emit(events, mode)


def _embed(fake: GeminiFake, body: dict[str, Any]) -> web.StreamResponse:
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise Reply(fake.error(400, "* BatchEmbedContentsRequest.requests: requests is not specified"))
    vectors = [embedding_vector(_text(r.get("content", {}).get("parts")), r.get("outputDimensionality") or 8)
               for r in requests]  # fmt: skip
    return json_response({"embeddings": [{"values": v} for v in vectors]})
