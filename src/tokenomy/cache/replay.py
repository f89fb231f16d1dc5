"""Between whole responses and streams: replay a cached answer as chunks, and assemble a
streamed answer into the whole response the cache stores.

Both directions use the OpenAI shapes (chat completions and legacy completions), so a request
that streams can be answered from an entry stored by one that did not, and the other way round.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tokenomy.cache.native_assembly import NativeAssembler


def _chunk_base(body: dict[str, Any], obj: str) -> dict[str, Any]:
    return {"id": body.get("id", ""), "object": obj, "created": body.get("created", 0), "model": body.get("model", "")}


async def replay(body: dict[str, Any], endpoint: str) -> AsyncIterator[dict[str, Any]]:
    """The chunks of a whole response: content, then finish reasons, then usage.

    A whole answer in another wire's own shape (a Responses API ``response``, an Anthropic
    ``message``) is yielded as it is, once: the edge of that wire turns it into its events.
    """
    if body.get("object") == "response" or body.get("type") == "message":
        yield body
        return
    chat = endpoint == "chat"
    base = _chunk_base(body, "chat.completion.chunk" if chat else "text_completion")
    choices = [c for c in body.get("choices") or () if isinstance(c, dict)]
    for choice in choices:
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            if message.get("refusal"):
                delta["refusal"] = message["refusal"]
            first = {"index": index, "delta": delta, "logprobs": choice.get("logprobs"), "finish_reason": None}
        else:
            first = {"index": index, "text": choice.get("text", ""), "logprobs": choice.get("logprobs"),
                     "finish_reason": None}  # fmt: skip
        yield {**base, "choices": [first]}
    for choice in choices:
        index = choice.get("index", 0)
        last: dict[str, Any] = {"index": index, "finish_reason": choice.get("finish_reason", "stop")}
        if chat:
            last["delta"] = {}
        else:
            last["text"] = ""
        yield {**base, "choices": [last]}
    if body.get("usage"):
        yield {**base, "choices": [], "usage": body["usage"]}


class Assembler:
    """Collect stream chunks into the whole response they amount to."""

    def __init__(self, endpoint: str) -> None:
        self._chat = endpoint == "chat"
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self.complete = False  # every choice reached a finish_reason
        self._native: NativeAssembler | None = None  # a stream in another wire's own event format

    def add(self, chunk: dict[str, Any]) -> None:
        """Fold one chunk in."""
        if "choices" not in chunk and isinstance(chunk.get("type"), str):
            self._native = self._native or NativeAssembler()
            self._native.add(chunk)
            self.complete = self._native.complete
            return
        if not self._head:
            self._head = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        finished = False
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index", 0))
            slot = self._choices.get(index)
            if slot is None:  # a new choice: not finished yet, so neither is the answer
                slot = self._choices[index] = {"text": [], "tools": {}, "finish": None}
                self.complete = False
            if self._chat:
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    slot["text"].append(delta["content"])
                for call in delta.get("tool_calls") or ():
                    tool = slot["tools"].setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                                          "name": [], "arguments": []})  # fmt: skip
                    tool["id"] = call.get("id") or tool["id"]
                    fn = call.get("function") or {}
                    tool["name"].append(fn.get("name") or "")
                    tool["arguments"].append(fn.get("arguments") or "")
            elif isinstance(choice.get("text"), str):
                slot["text"].append(choice["text"])
            if choice.get("finish_reason"):
                slot["finish"] = choice["finish_reason"]
                finished = True
        if finished:  # only a finish reason can complete the answer (checked once per finishing chunk)
            self.complete = all(s["finish"] for s in self._choices.values())

    def body(self) -> dict[str, Any]:
        """The whole response."""
        if self._native is not None and self._native.whole is not None:
            return self._native.whole
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            text = "".join(slot["text"])
            if self._chat:
                message: dict[str, Any] = {"role": "assistant", "content": text if text or not slot["tools"] else None}
                if slot["tools"]:
                    message["tool_calls"] = [
                        {"id": t["id"], "type": "function",
                         "function": {"name": "".join(t["name"]), "arguments": "".join(t["arguments"])}}
                        for _, t in sorted(slot["tools"].items())
                    ]  # fmt: skip
                choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": slot["finish"]})
            else:
                choices.append({"index": index, "text": text, "logprobs": None, "finish_reason": slot["finish"]})
        obj = "chat.completion" if self._chat else "text_completion"
        out = {**self._head, "object": obj, "choices": choices}
        if self._usage:
            out["usage"] = self._usage
        return out
