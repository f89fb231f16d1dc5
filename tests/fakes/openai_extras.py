"""The fake OpenAI server's other endpoints: images, audio speech and transcriptions, moderations,
and a Cohere/Jina-shaped ``/v1/rerank`` (as vLLM and Jina serve it)."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web
from tests.fakes.base import FAKE_KEY, FakeServer, Recorded, Reply, _headers, count_words, json_response

SPEECH_BYTES = b"ID3fake-mp3-audio"


def _fake(request: web.Request) -> FakeServer:
    fake: FakeServer = request.app[FAKE_KEY]
    return fake


def _need(fake: FakeServer, body: Any, *fields: str) -> dict[str, Any]:
    for field in ("model", *fields):
        if not isinstance(body, dict) or body.get(field) in (None, "", []):
            raise Reply(fake.error(400, f"Missing required parameter: '{field}'.", param=field))
    assert isinstance(body, dict)
    return body


async def images(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, _mode = await fake.prelude(request)
    body = _need(fake, body, "prompt")
    n = body.get("n") or 1
    data = [{"b64_json": base64.b64encode(f"png:{body['prompt']}:{i}".encode()).decode()} for i in range(n)]
    usage = {"input_tokens": count_words(body["prompt"]), "output_tokens": 100 * n, "total_tokens": 0,
             "input_tokens_details": {"text_tokens": count_words(body["prompt"]), "image_tokens": 0}}  # fmt: skip
    return json_response({"created": 1700000000, "data": data, "usage": usage})


async def speech(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, _mode = await fake.prelude(request)
    _need(fake, body, "input", "voice")
    return web.Response(body=SPEECH_BYTES + body["input"].encode(), content_type="audio/mpeg")


async def transcriptions(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    form = await request.post()
    upload = form.get("file")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    audio = upload.file.read() if isinstance(upload, web.FileField) else b""
    fake.requests.append(Recorded(request.path, _headers(request), {**fields, "file": audio}))
    denied = fake.check_auth(request)
    if denied is not None:
        return denied
    mode = fake.take_mode(request)
    if mode.startswith("error_"):
        return fake.error(int(mode[6:]))
    if not isinstance(upload, web.FileField) or not fields.get("model"):
        return fake.error(400, "Missing required parameter: 'file'.", param="file")
    text = f"heard {len(audio)} bytes of {upload.filename}"
    if fields.get("response_format") == "text":
        return web.Response(text=text, content_type="text/plain")
    out = count_words(text)
    usage = {"type": "tokens", "input_tokens": 7, "output_tokens": out, "total_tokens": 7 + out}
    return json_response({"text": text, "usage": usage})


async def moderations(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, _mode = await fake.prelude(request)
    body = _need(fake, body, "input")
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    results = [{"flagged": "kill" in str(text), "categories": {"violence": "kill" in str(text)},
                "category_scores": {"violence": 0.9 if "kill" in str(text) else 0.01}} for text in inputs]  # fmt: skip
    return json_response({"id": fake.next_id("modr-"), "model": body["model"], "results": results})


async def rerank(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, _mode = await fake.prelude(request)
    body = _need(fake, body, "query", "documents")
    words = set(body["query"].lower().split())
    docs = body["documents"]
    scored = [(len(words & set(str(d).lower().split())) / (len(words) or 1), i, d) for i, d in enumerate(docs)]
    scored.sort(key=lambda s: (-s[0], s[1]))
    top = scored[: body.get("top_n") or len(scored)]
    keep = bool(body.get("return_documents"))
    results = [{"index": i, "relevance_score": score, **({"document": {"text": d}} if keep else {})}
               for score, i, d in top]  # fmt: skip
    tokens = count_words(body["query"]) + sum(count_words(str(d)) for d in body["documents"])
    return json_response({"id": fake.next_id("rerank-"), "model": body["model"], "results": results,
                          "usage": {"total_tokens": tokens}})  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register these endpoints on the fake OpenAI app."""
    app.router.add_post("/v1/images/generations", images)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_post("/v1/rerank", rerank)
