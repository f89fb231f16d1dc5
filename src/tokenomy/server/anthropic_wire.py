"""Pure translation for the inbound Messages API (``POST /v1/messages``), no I/O.

An Anthropic SDK request becomes the internal OpenAI chat shape; the OpenAI-shaped answer (whole
or streamed) becomes an Anthropic message or the exact event sequence the real API emits.
"""

from __future__ import annotations

import json
from typing import Any

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
         "content_filter": "refusal"}


class InvalidMessagesRequest(ValueError):
    """A malformed Messages API request; ``param`` is the path of the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _require(ok: bool, message: str, param: str) -> None:
    if not ok:
        raise InvalidMessagesRequest(message, param)


def messages_request_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages API request as an OpenAI chat request."""
    model = body.get("model")
    _require(isinstance(model, str) and bool(model), "model: Field required (a model name).", "model")
    max_tokens = body.get("max_tokens")
    _require(isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 1,
             "max_tokens: Field required (a positive integer).", "max_tokens")
    messages = body.get("messages")
    _require(isinstance(messages, list) and bool(messages), "messages: at least one message is required.", "messages")
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _system_text(system)})
    for i, msg in enumerate(messages):  # type: ignore[arg-type]
        _require(isinstance(msg, dict), f"messages.{i}: must be an object.", f"messages.{i}")
        role = msg.get("role")
        _require(role in ("user", "assistant"), f"messages.{i}.role: must be 'user' or 'assistant'.",
                 f"messages.{i}.role")
        content = msg.get("content")
        _require(isinstance(content, str | list), f"messages.{i}.content: must be a string or a list of blocks.",
                 f"messages.{i}.content")
        out.extend(_user(content, i) if role == "user" else [_assistant(content, i)])
    request: dict[str, Any] = {"model": model, "messages": out, "max_tokens": max_tokens}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            request[key] = body[key]
    if body.get("stop_sequences"):
        request["stop"] = body["stop_sequences"]
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if user:
        request["user"] = user
    if body.get("stream"):
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        request["tools"] = [_tool(t, i) for i, t in enumerate(body["tools"])]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        request.update(_tool_choice(choice))
    return request


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    _require(isinstance(system, list), "system: must be a string or a list of text blocks.", "system")
    return "\n".join(b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text")


def _blocks(content: str | list[Any], i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    for j, block in enumerate(content):
        _require(isinstance(block, dict) and isinstance(block.get("type"), str),
                 f"messages.{i}.content.{j}: must be a content block with a 'type'.", f"messages.{i}.content.{j}")
    return content


def _user(content: str | list[Any], i: int) -> list[dict[str, Any]]:
    """One user turn: tool results become ``tool`` messages (first), the rest one user message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, i)):
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, f"messages.{i}.content.{j}")}})
        elif kind == "tool_result":
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
                            "content": _result_text(block.get("content"))})
        else:
            raise InvalidMessagesRequest(f"messages.{i}.content.{j}: blocks of type {kind!r} are not supported.",
                                         f"messages.{i}.content.{j}.type")
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        results.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return results


def _image_url(block: dict[str, Any], param: str) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return str(source.get("url", ""))
    raise InvalidMessagesRequest(f"{param}.source: must be a base64 or url image source.", f"{param}.source")


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return "" if content is None else str(content)


def _assistant(content: str | list[Any], i: int) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in _blocks(content, i):
        if block["type"] == "text":
            texts.append(str(block.get("text", "")))
        elif block["type"] == "tool_use":
            calls.append({"id": str(block.get("id", "")), "type": "function",
                          "function": {"name": str(block.get("name", "")),
                                       "arguments": json.dumps(block.get("input") or {})}})
        # thinking blocks carry no meaning for other models: dropped
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tool(tool: Any, i: int) -> dict[str, Any]:
    _require(isinstance(tool, dict) and isinstance(tool.get("name"), str),
             f"tools.{i}: must be an object with a 'name'.", f"tools.{i}")
    _require(tool.get("type") in (None, "custom"), f"tools.{i}: server tools ({tool.get('type')}) are not supported.",
             f"tools.{i}.type")
    function: dict[str, Any] = {"name": tool["name"],
                                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    mapped: dict[str, Any] = {
        "auto": {"tool_choice": "auto"},
        "any": {"tool_choice": "required"},
        "none": {"tool_choice": "none"},
        "tool": {"tool_choice": {"type": "function", "function": {"name": choice.get("name", "")}}},
    }.get(str(kind), {})
    _require(bool(mapped), f"tool_choice.type: unknown value {kind!r}.", "tool_choice.type")
    if choice.get("disable_parallel_tool_use"):
        mapped["parallel_tool_calls"] = False
    return mapped


def _usage(usage: Any) -> dict[str, int]:
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {"input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
            "output_tokens": int(usage.get("completion_tokens") or 0), "cache_read_input_tokens": cached}


def _tool_input(arguments: Any) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, json.JSONDecodeError):
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def openai_response_to_messages(resp: dict[str, Any], model_name: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic message."""
    choices = resp.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": str(message["content"])})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_0", "name": function.get("name", ""),
                        "input": _tool_input(function.get("arguments"))})
    rid = str(resp.get("id") or "0")
    return {
        "id": rid if rid.startswith("msg_") else f"msg_{rid}",
        "type": "message",
        "role": "assistant",
        "model": model_name,
        "content": content,
        "stop_reason": _STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(resp.get("usage")),
    }


Event = tuple[str, dict[str, Any]]


class MessagesStreamEncoder:
    """OpenAI chunks in, Anthropic stream events out, in the order the real API emits them."""

    def __init__(self, model_name: str, message_id: str) -> None:
        self._model = model_name
        self._id = message_id
        self._started = False
        self._done = False
        self._block: tuple[str, int] | None = None  # (kind, tool_calls index or -1)
        self._next_index = 0
        self._stop_reason = "end_turn"
        self._usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}

    def _start(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            message = {"id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
                       "stop_reason": None, "stop_sequence": None,
                       "usage": {"input_tokens": self._usage["input_tokens"], "output_tokens": 0}}
            out.append(("message_start", {"type": "message_start", "message": message}))

    def _close_block(self, out: list[Event]) -> None:
        if self._block is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._next_index - 1}))
            self._block = None

    def _open(self, out: list[Event], kind: str, block: dict[str, Any], tool_index: int = -1) -> None:
        self._close_block(out)
        out.append(("content_block_start", {"type": "content_block_start", "index": self._next_index,
                                            "content_block": block}))
        self._block = (kind, tool_index)
        self._next_index += 1

    def _delta(self, out: list[Event], delta: dict[str, Any]) -> None:
        out.append(("content_block_delta", {"type": "content_block_delta", "index": self._next_index - 1,
                                            "delta": delta}))

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events for one OpenAI chunk."""
        out: list[Event] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        self._start(out)
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._block is None or self._block[0] != "text":
                    self._open(out, "text", {"type": "text", "text": ""})
                self._delta(out, {"type": "text_delta", "text": text})
            for call in delta.get("tool_calls") or []:
                index = int(call.get("index", 0))
                function = call.get("function") or {}
                if self._block != ("tool", index):
                    block = {"type": "tool_use", "id": call.get("id") or f"toolu_{index}",
                             "name": function.get("name", ""), "input": {}}
                    self._open(out, "tool", block, index)
                if function.get("arguments"):
                    self._delta(out, {"type": "input_json_delta", "partial_json": function["arguments"]})
            if choice.get("finish_reason"):
                self._stop_reason = _STOP.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> list[Event]:
        """Close the open block and end the message (after the last chunk)."""
        out: list[Event] = []
        if self._done:
            return out
        self._done = True
        self._start(out)
        self._close_block(out)
        out.append(("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                                      "usage": {"output_tokens": self._usage["output_tokens"]}}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out


def error_event(type_: str, message: str) -> Event:
    """An ``error`` event for a stream that fails mid-way."""
    return "error", {"type": "error", "error": {"type": type_, "message": message}}
