"""Anthropic Messages stream events -> OpenAI ``chat.completion.chunk`` dicts (pure, no I/O).

Also home to the pieces the whole-response translation in :mod:`.translate` shares with the
stream: the stop-reason map and the usage conversion.
"""

from __future__ import annotations

import json
from typing import Any

#: Anthropic ``stop_reason`` -> OpenAI ``finish_reason``.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class UpstreamStreamError(ValueError):
    """The upstream sent an ``error`` event, or something that is not the Anthropic wire format."""


def finish_reason(stop_reason: Any) -> str:
    """The OpenAI ``finish_reason`` for an Anthropic ``stop_reason`` (unknown or missing -> ``stop``)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic ``usage`` -> OpenAI ``usage``.

    Anthropic counts cache reads and cache writes apart from ``input_tokens``; OpenAI's
    ``prompt_tokens`` is the whole prompt, so all three are added. Cache reads become
    ``prompt_tokens_details.cached_tokens`` and cache writes ``cache_write_tokens``.
    """
    fresh = _count(usage, "input_tokens")
    read = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    completion = _count(usage, "output_tokens")
    prompt = fresh + read + written
    details: dict[str, Any] = {"cached_tokens": read}
    if written:
        details["cache_write_tokens"] = written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }


def json_text(value: Any) -> str:
    """``value`` as JSON text the way OpenAI spells tool-call arguments (``json.dumps`` spacing, UTF-8 kept)."""
    return json.dumps(value, ensure_ascii=False)


def completion_id(request_id: str) -> str:
    """The OpenAI ``id`` for a request: ``chatcmpl-<request id>`` (kept as is when already prefixed)."""
    return request_id if request_id.startswith("chatcmpl") else f"chatcmpl-{request_id}"


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise UpstreamStreamError(f"usage.{key} is not an integer: {value!r}")
    return value


def _field(data: dict[str, Any], key: str, kind: type, event: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UpstreamStreamError(f"{event} event without a valid {key!r}")
    return value


class AnthropicStreamTranslator:
    """Turn Anthropic SSE events into OpenAI chunks, one :meth:`feed` call per event.

    Text blocks become ``delta.content``; ``tool_use`` blocks become ``delta.tool_calls`` with
    their own ``index`` (0, 1, ... in the order the blocks start) and ``input_json_delta``
    pieces as ``function.arguments``; thinking blocks become ``delta.reasoning_content`` (a
    widespread extension). ``message_delta`` gives the chunk with ``finish_reason``; when
    ``include_usage`` is set, ``message_stop`` adds the usage chunk (``choices: []``).
    """

    def __init__(self, model_name: str, request_id: str, created: int, include_usage: bool) -> None:
        self.model_name = model_name
        self.id = completion_id(request_id)
        self.created = created
        self.include_usage = include_usage
        self.usage: dict[str, Any] = {}
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, tool-call index)
        self._tools = 0
        self._started = False
        self._finished = False
        self._stopped = False

    def feed(self, event_type: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks (possibly none) for one Anthropic event; raises :class:`UpstreamStreamError`."""
        if not isinstance(data, dict):
            raise UpstreamStreamError(f"{event_type} event data is not an object")
        if event_type == "error":
            error = data.get("error")
            if isinstance(error, dict):
                raise UpstreamStreamError(f"{error.get('type', 'error')}: {error.get('message', '')}")
            raise UpstreamStreamError(f"upstream error event: {error!r}")
        if self._stopped:
            return []
        handler = _HANDLERS.get(event_type)
        return handler(self, data) if handler is not None else []

    # -- events ---------------------------------------------------------------------------------

    def _message_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        message = _field(data, "message", dict, "message_start")
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._merge_usage(usage)
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        index = _field(data, "index", int, "content_block_start")
        block = _field(data, "content_block", dict, "content_block_start")
        kind = block.get("type")
        out = self._ensure_started()
        if kind == "text":
            self._blocks[index] = ("text", -1)
            text = block.get("text")
            if isinstance(text, str) and text:
                out.append(self._chunk({"content": text}))
        elif kind == "tool_use":
            tool_index = self._tools
            self._tools += 1
            self._blocks[index] = ("tool", tool_index)
            call_id = _field(block, "id", str, "content_block_start")
            name = _field(block, "name", str, "content_block_start")
            initial = block.get("input")
            arguments = json_text(initial) if isinstance(initial, dict) and initial else ""
            call = {
                "index": tool_index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            out.append(self._chunk({"tool_calls": [call]}))
        elif kind == "thinking":
            self._blocks[index] = ("thinking", -1)
            thinking = block.get("thinking")
            if isinstance(thinking, str) and thinking:
                out.append(self._chunk({"reasoning_content": thinking}))
        else:  # redacted thinking, server tools and their results: nothing OpenAI can show
            self._blocks[index] = ("other", -1)
        return out

    def _block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        index = _field(data, "index", int, "content_block_delta")
        delta = _field(data, "delta", dict, "content_block_delta")
        if index not in self._blocks:
            raise UpstreamStreamError(f"content_block_delta for block {index}, which never started")
        kind, tool_index = self._blocks[index]
        delta_type = delta.get("type")
        if delta_type == "text_delta":
            text = _field(delta, "text", str, "text_delta")
            return [self._chunk({"content": text})] if text else []
        if delta_type == "input_json_delta":
            if kind != "tool":
                raise UpstreamStreamError(f"input_json_delta for block {index}, which is not a tool_use block")
            piece = _field(delta, "partial_json", str, "input_json_delta")
            if not piece:
                return []
            return [self._chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": piece}}]})]
        if delta_type == "thinking_delta":
            thinking = _field(delta, "thinking", str, "thinking_delta")
            return [self._chunk({"reasoning_content": thinking})] if thinking else []
        return []  # signature_delta, citations_delta, future delta types

    def _message_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = _field(data, "delta", dict, "message_delta")
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._merge_usage(usage)
        if self._finished:
            return []
        out = self._ensure_started()
        self._finished = True
        out.append(self._chunk({}, finish_reason(delta.get("stop_reason"))))
        return out

    def _message_stop(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._ensure_started()
        if not self._finished:
            self._finished = True
            out.append(self._chunk({}, "stop"))
        self._stopped = True
        if self.include_usage:
            out.append(self._base([]) | {"usage": openai_usage(self.usage)})
        return out

    # -- helpers --------------------------------------------------------------------------------

    def _ensure_started(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _merge_usage(self, usage: dict[str, Any]) -> None:
        # Anthropic's counts are cumulative: a later value replaces an earlier one.
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            if usage.get(key) is not None:
                self.usage[key] = _count(usage, key)

    def _base(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model_name,
            "choices": choices,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return self._base([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])


_HANDLERS = {
    "message_start": AnthropicStreamTranslator._message_start,
    "content_block_start": AnthropicStreamTranslator._block_start,
    "content_block_delta": AnthropicStreamTranslator._block_delta,
    "message_delta": AnthropicStreamTranslator._message_delta,
    "message_stop": AnthropicStreamTranslator._message_stop,
}
