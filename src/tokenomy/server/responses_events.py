"""Pure translation of answers into the Responses API shape (``POST /v1/responses``), no I/O.

A chat completion becomes a ``response`` object (:func:`response_from_chat`); a stream of chat
chunks becomes the Responses event sequence (:class:`ResponsesStreamEncoder`: ``response.created``,
``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta``... ``response.completed``); a whole ``response`` object (a cache
hit of a native answer) becomes the same sequence (:func:`events_from_response`).
"""

from __future__ import annotations

import time
from typing import Any

from tokenomy.server.responses_wire import new_id

Event = tuple[str, dict[str, Any]]

#: Request fields a ``response`` object echoes back, with the API's defaults.
_ECHOED: dict[str, Any] = {
    "instructions": None, "max_output_tokens": None, "metadata": {}, "parallel_tool_calls": True,
    "previous_response_id": None, "reasoning": None, "service_tier": None, "store": True, "temperature": None,
    "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": None,
    "truncation": "disabled", "user": None,
}  # fmt: skip


def response_usage(usage: Any) -> dict[str, Any] | None:
    """An OpenAI chat ``usage`` as a Responses ``usage``."""
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": prompt + completion,
    }


def shell(request: dict[str, Any], response_id: str, model: str, created: float) -> dict[str, Any]:
    """A ``response`` object for ``request`` with no output yet (status ``in_progress``)."""
    out: dict[str, Any] = {
        "id": response_id, "object": "response", "created_at": created, "status": "in_progress", "error": None,
        "incomplete_details": None, "model": model, "output": [], "usage": None,
    }  # fmt: skip
    for key, default in _ECHOED.items():
        value = request.get(key)
        out[key] = default if value is None else value
    return out


def _finish(response: dict[str, Any], finish_reason: Any) -> None:
    if finish_reason == "length":
        response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"], response["incomplete_details"] = "incomplete", {"reason": "content_filter"}
    else:
        response["status"] = "completed"


def _message_item(item_id: str, text: str, refusal: str | None, status: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or not refusal:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}  # fmt: skip


def response_from_chat(
    chat: dict[str, Any], request: dict[str, Any], response_id: str, model: str, created: float | None = None
) -> dict[str, Any]:
    """A whole chat completion as a ``response`` object."""
    response = shell(request, response_id, model, created if created is not None else time.time())
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else None
    output: list[dict[str, Any]] = []
    if text or refusal:
        output.append(_message_item(new_id("msg"), text, refusal, "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments")
            output.append(_call_item(new_id("fc"), str(call.get("id") or new_id("call")), str(function.get("name")),
                                     arguments if isinstance(arguments, str) else "{}", "completed"))  # fmt: skip
    response["output"] = output
    response["usage"] = response_usage(chat.get("usage"))
    _finish(response, choice.get("finish_reason"))
    return response


class ResponsesStreamEncoder:
    """Chat completion chunks in, Responses API events out (``(event name, data)`` pairs)."""

    def __init__(self, request: dict[str, Any], response_id: str, model: str) -> None:
        self.response = shell(request, response_id, model, time.time())
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []
        self._text: dict[str, Any] | None = None  # the open message item: {"index", "id", "parts"}
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> open call item
        self._finish_reason: Any = None
        self._usage: Any = None

    def _event(self, kind: str, **data: Any) -> Event:
        event = (kind, {"type": kind, "sequence_number": self._seq, **data})
        self._seq += 1
        return event

    def start(self) -> list[Event]:
        """``response.created`` and ``response.in_progress`` (once)."""
        if self._started:
            return []
        self._started = True
        snapshot = dict(self.response)
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]  # fmt: skip

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events for one chat chunk."""
        events = self.start()
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                events += self._text_delta(piece)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return events

    def _text_delta(self, piece: str) -> list[Event]:
        events: list[Event] = []
        if self._text is None:
            item_id = new_id("msg")
            self._text = {"index": len(self._output), "id": item_id, "parts": []}
            self._output.append(_message_item(item_id, "", None, "in_progress"))
            events.append(self._event("response.output_item.added", output_index=self._text["index"],
                                      item={**self._output[-1], "content": []}))  # fmt: skip
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(self._event("response.content_part.added", item_id=item_id,
                                      output_index=self._text["index"], content_index=0, part=part))  # fmt: skip
        self._text["parts"].append(piece)
        events.append(
            self._event("response.output_text.delta", item_id=self._text["id"], output_index=self._text["index"],
                        content_index=0, delta=piece, logprobs=[])
        )  # fmt: skip
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        key = int(call.get("index", 0))
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        open_call = self._calls.get(key)
        if open_call is None:
            item = _call_item(new_id("fc"), str(call.get("id") or new_id("call")), str(function.get("name") or ""),
                              "", "in_progress")  # fmt: skip
            open_call = self._calls[key] = {"index": len(self._output), "item": item, "arguments": []}
            self._output.append(item)
            events.append(self._event("response.output_item.added", output_index=open_call["index"], item=dict(item)))
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            open_call["arguments"].append(piece)
            events.append(self._event("response.function_call_arguments.delta", item_id=open_call["item"]["id"],
                                      output_index=open_call["index"], delta=piece))  # fmt: skip
        return events

    def finish(self) -> list[Event]:
        """Close every open item and end with ``response.completed`` (or ``response.incomplete``)."""
        events = self.start()
        if self._text is not None:
            text = "".join(self._text["parts"])
            index, item_id = self._text["index"], self._text["id"]
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self._output[index] = _message_item(item_id, text, None, "completed")
            events += [
                self._event("response.output_text.done", item_id=item_id, output_index=index, content_index=0,
                            text=text, logprobs=[]),
                self._event("response.content_part.done", item_id=item_id, output_index=index, content_index=0,
                            part=part),
                self._event("response.output_item.done", output_index=index, item=self._output[index]),
            ]  # fmt: skip
        for open_call in self._calls.values():
            item = open_call["item"]
            item["arguments"], item["status"] = "".join(open_call["arguments"]), "completed"
            events += [
                self._event("response.function_call_arguments.done", item_id=item["id"],
                            output_index=open_call["index"], arguments=item["arguments"], name=item["name"]),
                self._event("response.output_item.done", output_index=open_call["index"], item=item),
            ]  # fmt: skip
        self.response["output"] = self._output
        self.response["usage"] = response_usage(self._usage)
        _finish(self.response, self._finish_reason)
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        events.append(self._event(kind, response=self.response))
        return events

    def error(self, code: str | None, message: str, param: str | None) -> list[Event]:
        """An ``error`` event, then ``response.failed`` (how the API reports a failure mid-stream)."""
        events = self.start()
        events.append(self._event("error", code=code, message=message, param=param))
        self.response["status"] = "failed"
        kind = "rate_limit_exceeded" if code == "rate_limit_exceeded" else "server_error"  # the API's enum
        self.response["error"] = {"code": kind, "message": message}
        events.append(self._event("response.failed", response=self.response))
        return events


def events_from_response(response: dict[str, Any]) -> list[Event]:
    """The event sequence of a whole ``response`` object (text and function-call items)."""
    seq = iter(range(1_000_000))

    def event(kind: str, **data: Any) -> Event:
        return kind, {"type": kind, "sequence_number": next(seq), **data}

    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    events = [event("response.created", response=opening), event("response.in_progress", response=opening)]
    for index, item in enumerate(response.get("output") or ()):
        if not isinstance(item, dict):
            continue
        item_id = item.get("id", "")
        if item.get("type") == "message":
            events.append(event("response.output_item.added", output_index=index,
                                item={**item, "status": "in_progress", "content": []}))  # fmt: skip
            for k, part in enumerate(item.get("content") or ()):
                if not isinstance(part, dict):
                    continue
                empty = {**part, "text": ""} if part.get("type") == "output_text" else part
                events.append(event("response.content_part.added", item_id=item_id, output_index=index,
                                    content_index=k, part=empty))  # fmt: skip
                if part.get("type") == "output_text":
                    text = str(part.get("text") or "")
                    events.append(event("response.output_text.delta", item_id=item_id, output_index=index,
                                        content_index=k, delta=text, logprobs=[]))  # fmt: skip
                    events.append(event("response.output_text.done", item_id=item_id, output_index=index,
                                        content_index=k, text=text, logprobs=[]))  # fmt: skip
                events.append(event("response.content_part.done", item_id=item_id, output_index=index,
                                    content_index=k, part=part))  # fmt: skip
        elif item.get("type") == "function_call":
            events.append(event("response.output_item.added", output_index=index,
                                item={**item, "status": "in_progress", "arguments": ""}))  # fmt: skip
            arguments = str(item.get("arguments") or "")
            events.append(event("response.function_call_arguments.delta", item_id=item_id, output_index=index,
                                delta=arguments))  # fmt: skip
            events.append(event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                                arguments=arguments, name=item.get("name")))  # fmt: skip
        else:
            events.append(event("response.output_item.added", output_index=index, item=item))
        events.append(event("response.output_item.done", output_index=index, item=item))
    kind = "response.completed" if response.get("status") in (None, "completed") else "response.incomplete"
    events.append(event(kind, response=response))
    return events
