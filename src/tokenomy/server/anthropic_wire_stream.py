"""OpenAI ``chat.completion.chunk`` dicts -> Anthropic Messages stream events (pure, no I/O).

Also home to what the whole-response translation in :mod:`.anthropic_wire` shares with the
stream: the finish-reason map and the usage conversion.
"""

from __future__ import annotations

import json
from typing import Any

Event = tuple[str, dict[str, Any]]

#: OpenAI ``finish_reason`` -> Anthropic ``stop_reason``.
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: Any, has_tool_calls: bool) -> str:
    """The Anthropic ``stop_reason`` for an OpenAI ``finish_reason``.

    Some OpenAI-compatible servers end tool calls with ``stop``; Anthropic always says
    ``tool_use`` when the answer holds tool calls, so that wins over ``stop``.
    """
    reason = STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    return "tool_use" if has_tool_calls and reason == "end_turn" else reason


def anthropic_usage(usage: Any) -> dict[str, int]:
    """OpenAI ``usage`` -> Anthropic ``usage``.

    OpenAI's ``prompt_tokens`` is the whole prompt; Anthropic's ``input_tokens`` excludes cache
    reads (``cached_tokens``) and cache writes (``cache_write_tokens``), which get their own fields.
    """
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = _int(details.get("cached_tokens"))
    written = _int(details.get("cache_write_tokens"))
    out = {
        "input_tokens": max(_int(usage.get("prompt_tokens")) - read - written, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_read_input_tokens": read,
    }
    if written:
        out["cache_creation_input_tokens"] = written
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def error_event(type_: str, message: str) -> Event:
    """The ``error`` event that ends a stream failing mid-way."""
    return "error", {"type": "error", "error": {"type": type_, "message": message}}


class MessagesStreamEncoder:
    """OpenAI chunks in, Anthropic events out, in the order the real API emits them.

    ``message_start``; then per content block ``content_block_start``, its
    ``content_block_delta`` events (``text_delta`` or ``input_json_delta``) and
    ``content_block_stop`` (one block open at a time, indexes 0, 1, ...); then
    ``message_delta`` (``stop_reason``, usage) and ``message_stop``. The end is emitted once
    both the finish reason and the usage are known (OpenAI sends usage in a last chunk with no
    choices), or by :meth:`finish` after the last chunk.
    """

    def __init__(self, model_name: str, message_id: str) -> None:
        self.model_name = model_name
        self.message_id = message_id
        self._started = False
        self._ended = False
        self._open: int | None = None  # index of the open block
        self._open_kind = ""
        self._next = 0
        self._tools: dict[int, int] = {}  # OpenAI tool_calls index -> block index
        self._pending: dict[int, dict[str, str]] = {}  # tool calls whose name has not arrived yet
        self._stop: str | None = None
        self._usage: dict[str, int] | None = None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events for one OpenAI chunk (possibly none)."""
        if self._ended or not isinstance(chunk, dict):
            return []
        out: list[Event] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = anthropic_usage(chunk["usage"])
        self._start(out)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Anthropic messages have one choice; n > 1 is not asked for
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if choice.get("finish_reason"):
                self._flush_pending(out)
                self._close(out)
                self._stop = stop_reason(choice["finish_reason"], bool(self._tools))
        if self._stop is not None and self._usage is not None:
            self._end(out)
        return out

    def finish(self) -> list[Event]:
        """After the last chunk: close what is open and end the message, unless already ended."""
        if self._ended:
            return []
        out: list[Event] = []
        self._start(out)
        self._flush_pending(out)
        self._close(out)
        if self._stop is None:
            self._stop = stop_reason(None, bool(self._tools))
        self._end(out)
        return out

    # -- deltas ---------------------------------------------------------------------------------

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                if self._open_kind != "text":
                    self._open_block(out, "text", {"type": "text", "text": ""})
                out.append(self._block_delta(self._next - 1, {"type": "text_delta", "text": text}))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                self._tool_delta(call, out)

    def _tool_delta(self, call: dict[str, Any], out: list[Event]) -> None:
        position = call.get("index", 0)
        position = position if isinstance(position, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""
        if position in self._tools:  # a later piece of a call whose block is open (or, rarely, closed)
            if arguments:
                out.append(self._block_delta(self._tools[position], _json_delta(arguments)))
            return
        pending = self._pending.setdefault(position, {"id": "", "name": "", "arguments": ""})
        if isinstance(call.get("id"), str) and call["id"]:
            pending["id"] = call["id"]
        if isinstance(function.get("name"), str) and function["name"]:
            pending["name"] = function["name"]
        pending["arguments"] += arguments
        if pending["name"]:
            self._start_tool(position, out)

    def _start_tool(self, position: int, out: list[Event]) -> None:
        pending = self._pending.pop(position)
        call_id = pending["id"] or f"toolu_{self.message_id.removeprefix('msg_')}_{position}"
        block = {"type": "tool_use", "id": call_id, "name": pending["name"], "input": {}}
        self._open_block(out, "tool_use", block)
        self._tools[position] = self._next - 1
        if pending["arguments"]:
            out.append(self._block_delta(self._next - 1, _json_delta(pending["arguments"])))

    def _flush_pending(self, out: list[Event]) -> None:
        for position in sorted(self._pending):  # calls that never got a name still become blocks
            self._start_tool(position, out)

    # -- events ---------------------------------------------------------------------------------

    def _start(self, out: list[Event]) -> None:
        if self._started:
            return
        self._started = True
        usage = {"input_tokens": (self._usage or {}).get("input_tokens", 0), "output_tokens": 0}
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model_name,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(("message_start", {"type": "message_start", "message": message}))

    def _open_block(self, out: list[Event], kind: str, block: dict[str, Any]) -> None:
        self._close(out)
        index = self._next
        self._next += 1
        self._open, self._open_kind = index, kind
        out.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))

    def _close(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._open}))
            self._open, self._open_kind = None, ""

    def _block_delta(self, index: int, delta: dict[str, Any]) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}

    def _end(self, out: list[Event]) -> None:
        self._close(out)
        usage = self._usage or {"input_tokens": 0, "output_tokens": 0}
        # message_delta usage is cumulative; the SDKs take input and cache counts from it too
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        self._ended = True


def _json_delta(piece: str) -> dict[str, Any]:
    return {"type": "input_json_delta", "partial_json": piece}


def events_from_message(message: dict[str, Any]) -> list[Event]:
    """The event sequence of a whole Anthropic ``message`` (a cache hit of a native answer)."""
    usage: dict[str, Any] = message["usage"] if isinstance(message.get("usage"), dict) else {}
    opening = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {**usage, "output_tokens": 0}}  # fmt: skip
    events: list[Event] = [("message_start", {"type": "message_start", "message": opening})]
    for index, block in enumerate(message.get("content") or ()):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        deltas: list[dict[str, Any]] = []
        start = dict(block)
        if kind == "text":
            start["text"] = ""
            deltas.append({"type": "text_delta", "text": block.get("text", "")})
        elif kind in ("tool_use", "server_tool_use"):
            start["input"] = {}
            deltas.append(_json_delta(json.dumps(block.get("input") or {})))
        elif kind == "thinking":
            start["thinking"], start["signature"] = "", ""
            deltas.append({"type": "thinking_delta", "thinking": block.get("thinking", "")})
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    events.append(("message_delta", {"type": "message_delta", "delta": delta,
                                     "usage": {"output_tokens": usage.get("output_tokens", 0)}}))  # fmt: skip
    events.append(("message_stop", {"type": "message_stop"}))
    return events
