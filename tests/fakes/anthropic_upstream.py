"""A fake Anthropic Messages API upstream on a real loopback socket."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from tests.fakes.base import COMMON_MODES, FAKE_KEY, SSE, FakeServer, Reply, chop, count_words, json_response, pieces

#: Modes this fake understands (plus any ``error_NNN``/``overloaded_NNN``).
MODES = (*COMMON_MODES, "overloaded_529", "stream_error")
TOOL_INPUT = {"arg": "x"}

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: fake error_400"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class AnthropicFake(FakeServer):
    """Fake Anthropic server; ``base_url`` is the bare origin (the SDK appends ``/v1/messages``)."""

    request_id_header = "request-id"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", _messages)
        app.router.add_post("/v1/messages/count_tokens", _count_tokens)

    def check_auth(self, request: web.Request) -> web.StreamResponse | None:
        bearer = request.headers.get("Authorization", "")
        key = request.headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else "")
        if not key:  # newer SDKs send the API key as ``Authorization: Bearer``; both are accepted
            return self.error(401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            return self.error(401)
        if not request.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        return None

    def error(self, status: int, message: str | None = None, **fields: Any) -> web.Response:
        """Anthropic's ``{"type": "error", "error": {type, message}}``; 429/529 carry ``retry-after: 7``."""
        type_, msg = _ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", "Fake error"))
        request_id = self.next_id("req_")
        payload = {
            "type": "error",
            "error": {"type": type_, "message": message or msg} | fields,
            "request_id": request_id,
        }
        headers = {"request-id": request_id}
        if status in (429, 529):
            headers["retry-after"] = "7"
        return json_response(payload, status, headers)


async def start_anthropic_fake(**opts: Any) -> AnthropicFake:
    """Start an :class:`AnthropicFake`; ``opts``: mode, delay, api_key, stream_chunks, stream_interval."""
    return await AnthropicFake(**opts).start()


def _fake(request: web.Request) -> AnthropicFake:
    fake = request.app[FAKE_KEY]
    assert isinstance(fake, AnthropicFake)
    return fake


def _block_text(block: Any) -> str:
    """Countable text of one content block (text, tool_result, tool_use input)."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        return _content_text(block.get("content"))
    if block.get("type") == "tool_use":
        return json.dumps(block.get("input", {}))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(_block_text(b) for b in content)
    return _block_text(content)


def _input_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages") or []
    return count_words(_content_text(body.get("system"))) + sum(
        count_words(_content_text(m.get("content"))) for m in messages if isinstance(m, dict)
    )


def _prompt_cache(fake: AnthropicFake, body: dict[str, Any]) -> tuple[int, int]:
    """Anthropic's prompt cache: ``(read, written)`` tokens of the prefix up to the last ``cache_control``.

    The prefix (tools, system, messages, in that order, markers ignored) is read when an earlier
    request wrote it, else written. The cache lives as long as the fake (``reset`` keeps it).
    """
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    blocks.extend(system if isinstance(system, list) else [system] if system else [])
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        blocks.extend(content if isinstance(content, list) else [content])
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and "cache_control" in b]
    if not marked:
        return 0, 0
    prefix = [{k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b for b in blocks]
    prefix = prefix[: marked[-1] + 1]
    key = json.dumps(prefix, sort_keys=True)
    tokens = sum(count_words(_block_text(b)) for b in prefix)
    cache: set[str] = fake.__dict__.setdefault("prompt_cache", set())
    if key in cache:
        return tokens, 0
    cache.add(key)
    return 0, tokens


def _validate(fake: AnthropicFake, body: Any, *, need_max_tokens: bool = True) -> dict[str, Any]:
    problem = None
    if not isinstance(body, dict):
        problem = "body: Input should be an object"
    elif not isinstance(body.get("model"), str):
        problem = "model: Field required"
    elif need_max_tokens and not isinstance(body.get("max_tokens"), int):
        problem = "max_tokens: Field required"
    elif not isinstance(body.get("messages"), list):
        problem = "messages: Field required"
    elif not body["messages"]:
        problem = "messages: at least one message is required"
    if problem:
        raise Reply(fake.error(400, problem))
    assert isinstance(body, dict)
    return body


async def _count_tokens(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    body, _mode = await fake.prelude(request)
    return json_response({"input_tokens": _input_tokens(_validate(fake, body, need_max_tokens=False))})


async def _messages(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    raw, mode = await fake.prelude(request)
    body = _validate(fake, raw)
    messages = body["messages"]
    last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
    content = last_user.get("content")
    blocks = content if isinstance(content, list) else []
    has_tool_result = any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)
    user_text = (
        " ".join(_block_text(b) for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        if isinstance(content, list)
        else _content_text(content)
    )
    if not user_text and has_tool_result:
        user_text = _content_text(blocks)

    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {}
    block: dict[str, Any]
    if tools and not has_tool_result and choice.get("type") != "none":
        name = choice["name"] if choice.get("type") == "tool" else tools[0]["name"]
        block = {"type": "tool_use", "id": fake.next_id("toolu_"), "name": name, "input": TOOL_INPUT}
        stop_reason, output_tokens = "tool_use", count_words(json.dumps(TOOL_INPUT))
    else:
        text = (
            " ".join(f"tick{i}" for i in range(fake.stream_chunks)) if mode == "slow_stream" else f"echo: {user_text}"
        )
        stop_reason = "end_turn"
        if count_words(text) > body["max_tokens"]:
            text, stop_reason = " ".join(text.split()[: body["max_tokens"]]), "max_tokens"
        block, output_tokens = {"type": "text", "text": text}, count_words(text)
    read, written = _prompt_cache(fake, body)
    usage = {
        "input_tokens": _input_tokens(body) - read - written,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }
    message = {
        "id": fake.next_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [block],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }

    if body.get("stream") is not True:
        return json_response(message, headers={"request-id": fake.next_id("req_")})

    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]
    if block["type"] == "tool_use":
        first = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *chop(json.dumps(TOOL_INPUT))]]
    else:
        first = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
    events.append(("content_block_start", {"type": "content_block_start", "index": 0, "content_block": first}))
    events.append(("ping", {"type": "ping"}))
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
    if mode == "stream_error":
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        events = [*events[:4], ("error", error)]
    else:
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    return await SSE(fake, request).emit(events, mode, fault_at=3)
