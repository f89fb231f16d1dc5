"""Pure translation between the OpenAI chat shape and the Anthropic Messages API (no I/O).

Outbound: the gateway's OpenAI-shaped request becomes a ``/v1/messages`` body; Anthropic's
message or event stream becomes OpenAI completions or chunks.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_MAX_TOKENS = 4096
# OpenAI parameters the Messages API has no equivalent for: refused rather than silently dropped.
_UNSUPPORTED = ("logprobs", "top_logprobs", "seed", "frequency_penalty", "presence_penalty", "logit_bias")
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
           "pause_turn": "stop", "refusal": "content_filter"}


class UnsupportedParameter(ValueError):
    """An OpenAI parameter the Anthropic API cannot honour."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class UpstreamStreamError(ValueError):
    """The Anthropic stream reported an error or sent an event of the wrong shape."""


def text_of(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def to_anthropic_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI chat request as a Messages API body for ``upstream_model``."""
    for param in _UNSUPPORTED:
        if body.get(param) not in (None, False):
            raise UnsupportedParameter(param, f"The Anthropic Messages API does not support '{param}'.")
    if body.get("n") not in (None, 1):
        raise UnsupportedParameter("n", "The Anthropic Messages API returns one choice; 'n' must be 1.")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for msg in body["messages"]:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(text_of(msg.get("content")))
        elif role == "user":
            _append(messages, "user", _user_blocks(msg.get("content")))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(msg))
        elif role in ("tool", "function"):
            result = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id") or msg.get("name") or "",
                      "content": text_of(msg.get("content"))}
            _append(messages, "user", [result])
    out: dict[str, Any] = {
        "model": upstream_model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    instruction = _format_instruction(body.get("response_format"))
    if instruction:
        system.append(instruction)
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)  # Anthropic's range is 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        out["tools"] = [_tool(t) for t in body["tools"]]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    return out


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add a turn, merging with the previous one of the same role (Anthropic alternates roles)."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            blocks.append({"type": "image", "source": _image_source(url)})
        else:
            raise UnsupportedParameter("messages", f"Content parts of type {kind!r} cannot be sent to Anthropic.")
    return blocks


def _image_source(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _assistant_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = text_of(msg.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in msg.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = {"_raw": function.get("arguments")}
        blocks.append({"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
                       "input": arguments if isinstance(arguments, dict) else {"value": arguments}})
    return blocks


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    out = {"name": function.get("name", ""),
           "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None or choice == "auto":
        out = {"type": "auto"} if parallel is False else None
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    else:
        raise UnsupportedParameter("tool_choice", f"Unsupported tool_choice {choice!r}.")
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _format_instruction(fmt: Any) -> str | None:
    """Anthropic has no JSON mode: ask for JSON in the system prompt instead (documented)."""
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
        return None
    text = "Respond with a single valid JSON object and nothing else."
    schema = (fmt.get("json_schema") or {}).get("schema")
    if schema:
        text += " It must conform to this JSON schema: " + json.dumps(schema, separators=(",", ":"))
    return text


def usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage as OpenAI usage (prompt tokens include cache reads and writes)."""
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def from_anthropic_response(resp: dict[str, Any], model_name: str, request_id: str, created: int) -> dict[str, Any]:
    """An Anthropic message as an OpenAI ``chat.completion``."""
    if resp.get("type") == "error" or not isinstance(resp.get("content"), list):
        raise UpstreamStreamError("not an Anthropic message")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in resp["content"]:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""), "arguments": json.dumps(block.get("input", {}))}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": resp.get("id") or request_id,
        "object": "chat.completion",
        "created": created,
        "model": model_name,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _FINISH.get(resp.get("stop_reason") or "end_turn", "stop")}],
        "usage": usage_to_openai(resp.get("usage") or {}),
    }


class AnthropicStreamTranslator:
    """Turns Anthropic stream events into OpenAI ``chat.completion.chunk`` dicts."""

    def __init__(self, model_name: str, request_id: str, created: int, include_usage: bool) -> None:
        self._base = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model_name}
        self._include_usage = include_usage
        self._tools: dict[int, int] = {}  # content block index -> tool_calls index
        self._usage: dict[str, Any] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks for one event (often none)."""
        try:
            return self._feed(event, data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise UpstreamStreamError(f"unexpected {event!r} event ({exc.__class__.__name__})") from None

    def _feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        if event == "message_start":
            self._usage.update(data["message"].get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if event == "content_block_start":
            block = data["content_block"]
            if block["type"] == "tool_use":
                index = self._tools[data["index"]] = len(self._tools)
                call = {"index": index, "id": block["id"], "type": "function",
                        "function": {"name": block["name"], "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            if block["type"] == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if event == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                return [self._chunk({"content": delta["text"]})]
            if delta["type"] == "input_json_delta":
                call = {"index": self._tools[data["index"]], "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            return []  # thinking and signature deltas have no OpenAI equivalent
        if event == "message_delta":
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, _FINISH.get(reason, "stop"))] if reason else []
        if event == "message_stop":
            if self._include_usage:
                return [{**self._base, "choices": [], "usage": usage_to_openai(self._usage)}]
            return []
        if event == "error":
            error = data.get("error") or {}
            raise UpstreamStreamError(str(error.get("message") or error.get("type") or "stream error"))
        return []  # ping, content_block_stop and future event types
