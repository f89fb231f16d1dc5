"""A fake OpenAI REST upstream (chat, legacy completions, embeddings, models) on a real loopback socket."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from typing import Any

from aiohttp import web
from tests.fakes import openai_extras
from tests.fakes.base import (
    COMMON_MODES,
    FAKE_KEY,
    SSE,
    FakeServer,
    Reply,
    chop,
    count_words,
    json_response,
    pieces,
)
from tests.fakes.openai_responses import responses

#: Modes this fake understands (plus any ``error_NNN``).
#: ``mistral``: refuses ``stream_options`` (422 ``extra_forbidden``, as Mistral's API does) and puts the usage
#: on the last chunk of every stream instead. ``bad_embedding``: embeddings answers whose vectors are ``null``.
MODES = (*COMMON_MODES, "no_usage_stream", "mistral", "bad_embedding")
TOOL_ARGUMENTS = '{"arg": "x"}'
EMBEDDING_DIM = 8

_ERRORS: dict[int, tuple[str, str, str | None, str | None]] = {
    400: ("Invalid value for 'messages' (fake error_400).", "invalid_request_error", "messages", "invalid_value"),
    401: ("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None, "unsupported_country"),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model",
        "model_not_found",
    ),
    429: ("Rate limit reached", "requests", None, "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None, None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None, None),
}


class OpenAIFake(FakeServer):
    """Fake OpenAI server; ``base_url`` ends in ``/v1``."""

    base_path = "/v1"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", _chat)
        app.router.add_post("/v1/completions", _completions)
        app.router.add_post("/v1/embeddings", _embeddings)
        app.router.add_post("/v1/responses", responses)
        openai_extras.add_routes(app)
        app.router.add_get("/v1/models", _models)
        app.router.add_get("/v1/models/{model:.+}", _model)

    def answer(self, model: str, user_text: str) -> str:
        """The chat answer's text (subclasses answer from recorded responses)."""
        return f"echo: {user_text}"

    def check_auth(self, request: web.Request) -> web.StreamResponse | None:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401)
        return None

    def error(self, status: int, message: str | None = None, **fields: Any) -> web.Response:
        """OpenAI's ``{"error": {message, type, param, code}}``; 429 carries ``Retry-After: 7``."""
        default_type = "server_error" if status >= 500 else "invalid_request_error"
        msg, type_, param, code = _ERRORS.get(status, (f"Fake error {status}", default_type, None, None))
        if message is not None:  # a specific validation error: only the given fields apply
            msg, param, code = message, None, None
        error = {"message": msg, "type": type_, "param": param, "code": code} | fields
        headers = {"x-request-id": self.next_id("req_")}
        if status == 429:
            headers |= {"Retry-After": "7", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "7s"}
        return json_response({"error": error}, status, headers)


async def start_openai_fake(**opts: Any) -> OpenAIFake:
    """Start an :class:`OpenAIFake`; ``opts``: mode, delay, api_key, stream_chunks, stream_interval, models."""
    opts.setdefault("models", ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small"))
    return await OpenAIFake(**opts).start()


# -- helpers ----------------------------------------------------------------------------------------------
def _fake(request: web.Request) -> OpenAIFake:
    fake = request.app[FAKE_KEY]
    assert isinstance(fake, OpenAIFake)
    return fake


def _text_of(content: Any) -> str:
    """Text of a message ``content``: a string or a list of parts (only ``text`` parts count)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


IMAGE_TOKENS = 1105  # what gpt-4o bills a 1024x2048 image at high detail (6 tiles of 170, plus 85)


def _billed_parts(body: dict[str, Any]) -> int:
    """What a provider bills beyond message text: tool definitions and schemas (roughly, by their
    JSON text) and images (``IMAGE_TOKENS`` each)."""
    tokens = 0
    for key in ("tools", "response_format"):
        if body.get(key):
            tokens += len(json.dumps(body[key])) // 4
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            tokens += IMAGE_TOKENS * sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return tokens


def _require(fake: OpenAIFake, ok: bool, message: str, param: str | None, code: str | None = None) -> None:
    if not ok:
        raise Reply(fake.error(400, message, param=param, code=code))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _truncate(text: str, limit: Any) -> tuple[str, str]:
    """Cut ``text`` to ``limit`` words: ``(text, finish_reason)``."""
    if isinstance(limit, int) and count_words(text) > limit:
        return " ".join(text.split()[:limit]), "length"
    return text, "stop"


def _logprob_entry(i: int, token: str, top: int) -> dict[str, Any]:
    lp = -round(0.05 * (i % 7 + 1), 4)
    alts = [{"token": token, "logprob": lp, "bytes": list(token.encode())}]
    alts += [{"token": f"alt{k}", "logprob": lp - k, "bytes": list(f"alt{k}".encode())} for k in range(1, top)]
    return {"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": alts[:top]}


def _json_content(fmt: dict[str, Any], text: str) -> str:
    """JSON for ``response_format``: ``{"echo": text}``, or default values for a json_schema's properties."""
    schema = fmt.get("json_schema", {}).get("schema", {}) if fmt.get("type") == "json_schema" else {}
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not props:
        return json.dumps({"echo": text})
    defaults = {"string": text, "integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}
    return json.dumps({k: defaults.get(v.get("type")) for k, v in props.items()})


# -- chat completions -------------------------------------------------------------------------------------
async def _chat(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, mode = await fake.prelude(request)
    _require(
        fake, isinstance(body, dict) and isinstance(body.get("model"), str), "you must provide a model parameter", None
    )
    messages = body.get("messages")
    _require(
        fake,
        isinstance(messages, list) and bool(messages),
        "Missing required parameter: 'messages'.",
        "messages",
        "missing_required_parameter",
    )
    stream = body.get("stream") is True
    _require(
        fake,
        stream or body.get("stream_options") is None,
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
    )
    n = body.get("n") or 1
    _require(fake, isinstance(n, int) and 1 <= n <= 128, "Invalid 'n': must be between 1 and 128.", "n")

    prompt_tokens = sum(count_words(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    prompt_tokens += _billed_parts(body)
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    user_text = next(
        (_text_of(m.get("content")) for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), ""
    )
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    tool: dict[str, str] | None = None
    if tools and last.get("role") == "user" and choice != "none":
        name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
        tool = {"id": fake.next_id("call_"), "name": name, "arguments": TOOL_ARGUMENTS}
    if mode == "slow_stream":
        text = " ".join(f"tick{i}" for i in range(fake.stream_chunks))
    elif isinstance(body.get("response_format"), dict) and body["response_format"].get("type") != "text":
        text = _json_content(body["response_format"], user_text)
    elif user_text in fake.answers:
        text = fake.answers[user_text]
    else:
        text = fake.answer(body["model"], user_text)
    text, finish = _truncate(text, body.get("max_completion_tokens", body.get("max_tokens")))
    if tool is not None:
        finish, text = "tool_calls", ""
    per_choice = count_words(tool["arguments"]) if tool else count_words(text)
    usage = _usage(prompt_tokens, per_choice * n)
    top = body.get("top_logprobs") or 0
    want_logprobs = body.get("logprobs") is True
    base = {
        "id": fake.next_id("chatcmpl-"),
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
    }

    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else text, "refusal": None}
        if tool:
            message["tool_calls"] = [
                {
                    "id": tool["id"],
                    "type": "function",
                    "function": {"name": tool["name"], "arguments": tool["arguments"]},
                }
            ]
        logprobs = (
            {"content": [_logprob_entry(i, t, top) for i, t in enumerate(pieces(text))], "refusal": None}
            if want_logprobs
            else None
        )
        choices = [{"index": i, "message": message, "logprobs": logprobs, "finish_reason": finish} for i in range(n)]
        return json_response(
            {**base, "object": "chat.completion", "choices": choices, "usage": usage},
            headers={"x-request-id": fake.next_id("req_")},
        )

    if mode == "mistral" and "stream_options" in body:
        msg = "Extra inputs are not permitted"
        detail = [{"type": "extra_forbidden", "loc": ["body", "stream_options"], "msg": msg}]
        raise Reply(json_response({"object": "error", "message": {"detail": detail}, "type": "invalid_request_error",
                                   "param": None, "code": None}, 422))  # fmt: skip
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and mode != "no_usage_stream"
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None, lp: Any = None) -> Any:
        choice = {"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish_reason}
        return None, {**base, "object": "chat.completion.chunk", "choices": [choice], **extra}

    events: list[tuple[str | None, Any]] = []
    for i in range(n):
        if tool:
            fn = {"name": tool["name"], "arguments": ""}
            call = {"index": 0, "id": tool["id"], "type": "function", "function": fn}
            events.append(chunk(i, {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}))
            events += [
                chunk(i, {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in chop(tool["arguments"])
            ]
        else:
            events.append(chunk(i, {"role": "assistant", "content": "", "refusal": None}))
            for k, piece in enumerate(pieces(text)):
                lp = {"content": [_logprob_entry(k, piece, top)], "refusal": None} if want_logprobs else None
                events.append(chunk(i, {"content": piece}, lp=lp))
        events.append(chunk(i, {}, finish))
        if mode == "mistral":
            events[-1][1]["usage"] = usage
    if include_usage:
        events.append((None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return await SSE(fake, request).emit(events, mode)


# -- legacy completions -----------------------------------------------------------------------------------
def _prompts(prompt: Any) -> list[tuple[str, int]] | None:
    """``(text, tokens)`` per prompt; ``prompt`` is str, list[str], list[int] or list[list[int]]."""
    if isinstance(prompt, str):
        return [(prompt, count_words(prompt))]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, int) for p in prompt):
            return [(" ".join(map(str, prompt)), len(prompt))]
        if all(isinstance(p, str) for p in prompt):
            return [(p, count_words(p)) for p in prompt]
        if all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompt):
            return [(" ".join(map(str, p)), len(p)) for p in prompt]
    return None


def _legacy_logprobs(text: str, top: int) -> dict[str, Any]:
    toks = pieces(text)
    offsets = [sum(len(t) for t in toks[:i]) for i in range(len(toks))]
    lps = [_logprob_entry(i, t, top)["logprob"] for i, t in enumerate(toks)]
    return {
        "tokens": toks,
        "token_logprobs": lps,
        "top_logprobs": [{t: lp} for t, lp in zip(toks, lps, strict=True)],
        "text_offset": offsets,
    }


async def _completions(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, mode = await fake.prelude(request)
    _require(
        fake, isinstance(body, dict) and isinstance(body.get("model"), str), "you must provide a model parameter", None
    )
    prompts = _prompts(body.get("prompt"))
    _require(fake, prompts is not None, "Invalid 'prompt': expected a string or an array.", "prompt")
    assert prompts is not None
    stream = body.get("stream") is True
    n = body.get("n") or 1
    lp_top = body.get("logprobs")
    base = {
        "id": fake.next_id("cmpl-"),
        "created": int(time.time()),
        "model": body["model"],
        "object": "text_completion",
    }
    outputs: list[tuple[int, str, str]] = []
    for p_idx, (ptext, _) in enumerate(prompts):
        text = " ".join(f"tick{i}" for i in range(fake.stream_chunks)) if mode == "slow_stream" else f"echo: {ptext}"
        text, finish = _truncate(text, body.get("max_tokens"))
        if body.get("echo") is True:
            text = ptext + text
        outputs += [(p_idx * n + j, text, finish) for j in range(n)]
    usage = _usage(sum(t for _, t in prompts), sum(count_words(t) for _, t, _ in outputs))

    if not stream:
        choices = [
            {
                "text": t,
                "index": i,
                "finish_reason": f,
                "logprobs": _legacy_logprobs(t, lp_top) if isinstance(lp_top, int) else None,
            }
            for i, t, f in outputs
        ]
        return json_response({**base, "choices": choices, "usage": usage})

    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and mode != "no_usage_stream"
    events: list[tuple[str | None, Any]] = []
    for i, t, f in outputs:
        events += [
            (None, {**base, "choices": [{"text": p, "index": i, "logprobs": None, "finish_reason": None}]})
            for p in pieces(t)
        ]
        events.append((None, {**base, "choices": [{"text": "", "index": i, "logprobs": None, "finish_reason": f}]}))
    if include_usage:
        events.append((None, {**base, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return await SSE(fake, request).emit(events, mode)


# -- embeddings and models --------------------------------------------------------------------------------
def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) for t in value)


def embedding_vector(item: str | list[int], dim: int = EMBEDDING_DIM) -> list[float]:
    """The fake's deterministic unit vector for one input (float32-exact, so base64 round-trips equal)."""
    key = item.encode() if isinstance(item, str) else ("tokens:" + ",".join(map(str, item))).encode()
    raw: list[float] = []
    counter = 0
    while len(raw) < dim:
        digest = hashlib.sha256(key + counter.to_bytes(4, "little")).digest()
        raw += [u / 2**31 - 1.0 for u in struct.unpack("<8I", digest)]
        counter += 1
    norm = sum(v * v for v in raw[:dim]) ** 0.5 or 1.0
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(v / norm for v in raw[:dim]))))


async def _embeddings(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, mode = await fake.prelude(request)
    _require(
        fake, isinstance(body, dict) and isinstance(body.get("model"), str), "you must provide a model parameter", None
    )
    raw = body.get("input")
    items: list[str | list[int]] | None = None
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
        items = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(s, str) or _is_tokens(s) for s in raw):
        items = list(raw)
    _require(fake, items is not None, "'$.input' is invalid. Please check the API reference.", "input")
    assert items is not None
    dim = body.get("dimensions") or EMBEDDING_DIM
    _require(fake, isinstance(dim, int) and 1 <= dim <= 4096, "Invalid 'dimensions'.", "dimensions")
    fmt = body.get("encoding_format") or "float"
    _require(fake, fmt in ("float", "base64"), "Invalid 'encoding_format'.", "encoding_format")
    data = []
    for i, item in enumerate(items):
        vec = embedding_vector(item, dim)
        emb: Any = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if fmt == "base64" else vec
        if mode == "bad_embedding":
            emb = None
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = sum(count_words(x) if isinstance(x, str) else len(x) for x in items)
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _model_obj(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "openai"}


async def _models(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    await fake.prelude(request)
    return json_response({"object": "list", "data": [_model_obj(m) for m in fake.models]})


async def _model(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    await fake.prelude(request)
    name = request.match_info["model"]
    if name not in fake.models:
        return fake.error(404, f"The model '{name}' does not exist", param="model", code="model_not_found")
    return json_response(_model_obj(name))
