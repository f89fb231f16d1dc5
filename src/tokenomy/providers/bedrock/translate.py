"""OpenAI chat completions <-> AWS Bedrock Converse / ConverseStream (pure, no I/O).

Requests: :func:`to_converse`; answers: :func:`from_converse` or, streamed,
:class:`ConverseStreamTranslator` (fed the decoded event-stream messages).

What does not map one to one, and what happens instead:

- System and developer messages become ``system`` blocks; consecutive same-role turns are
  merged (Converse wants user and assistant to alternate); tool results are ``toolResult``
  blocks in a user turn (``status: error`` never: OpenAI has no error flag).
- Sampling goes to ``inferenceConfig`` (``maxTokens``, ``temperature``, ``topP``,
  ``stopSequences``); tools to ``toolConfig`` (``required`` is ``any``).
- ``response_format`` is refused: Converse has no JSON mode of its own for every model.
- Images: ``data:`` URLs of png/jpeg/gif/webp become ``image`` blocks; other URLs are refused.
- Every other top-level field has its fate in :data:`CHAT_FIELDS`; unknown ones are refused.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tokenomy.providers import chat_request

Block = dict[str, Any]

CHAT_FIELDS: dict[str, str] = {
    "messages": "translated", "model": "translated", "max_completion_tokens": "translated",
    "max_tokens": "translated", "temperature": "translated", "top_p": "translated", "stop": "translated",
    "stream": "translated", "tools": "translated", "tool_choice": "translated",
    "parallel_tool_calls": "not needed", "stream_options": "not needed", "metadata": "not needed",
    "user": "not needed", "safety_identifier": "not needed", "prompt_cache_key": "not needed",
    "prompt_cache_retention": "not needed", "prompt_cache_options": "not needed", "service_tier": "not needed",
    "store": "not needed",
    "response_format": "refused", "n": "refused", "logprobs": "refused", "top_logprobs": "refused", "seed": "refused",
    "frequency_penalty": "refused", "presence_penalty": "refused", "logit_bias": "refused", "audio": "refused",
    "modalities": "refused", "functions": "refused", "function_call": "refused", "prediction": "refused",
    "verbosity": "refused", "web_search_options": "refused", "moderation": "refused", "reasoning_effort": "refused",
}  # fmt: skip
_HARMLESS: dict[str, tuple[Any, ...]] = {
    "n": (1,), "logprobs": (False,), "top_logprobs": (0,), "frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0),
    "logit_bias": ({},), "modalities": (["text"],), "store": (False,), "service_tier": ("auto", "default"),
    "response_format": ({"type": "text"},),
}  # fmt: skip
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}  # fmt: skip
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


class UnsupportedParameter(ValueError):
    """A request parameter Converse cannot honour; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def to_converse(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as a Converse body."""
    refused = chat_request.refused_field(body, CHAT_FIELDS, _HARMLESS, "Bedrock Converse")
    if refused is not None:
        raise UnsupportedParameter(*refused)
    system, messages = _messages(body.get("messages"))
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = [{"text": text} for text in system]
    config: dict[str, Any] = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        config["maxTokens"] = limit
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP")):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if config:
        out["inferenceConfig"] = config
    tools = body.get("tools")
    if tools:
        tool_config: dict[str, Any] = {"tools": [_tool(t, i) for i, t in enumerate(tools)]}
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            tool_config["toolChoice"] = choice
        out["toolConfig"] = tool_config
    return out


def _messages(raw: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(raw, list) or not raw:
        raise UnsupportedParameter("messages", "'messages' must be a non-empty list.")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        role = message.get("role") if isinstance(message, dict) else None
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.append(chat_request.text_of(message.get("content")))
        elif role == "tool":
            answer = [{"text": chat_request.text_of(message.get("content"))}]
            result = {"toolUseId": str(message.get("tool_call_id")), "content": answer}
            _append(turns, "user", [{"toolResult": result}])
        elif role == "assistant":
            blocks: list[Block] = []
            text = chat_request.text_of(message.get("content"))
            if text:
                blocks.append({"text": text})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                arguments = chat_request.arguments_object(function.get("arguments"))
                use = {"toolUseId": str(call.get("id")), "name": function.get("name"), "input": arguments}
                blocks.append({"toolUse": use})
            if blocks:
                _append(turns, "assistant", blocks)
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content"), where))
        else:
            raise UnsupportedParameter(f"{where}.role", f"Unknown message role {role!r}.")
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[Block]) -> None:
    chat_request.append_turn(turns, role, "content", blocks)  # Converse wants turns to alternate


def _user_blocks(content: Any, where: str) -> list[Block]:
    if isinstance(content, str):
        return [{"text": content}]
    blocks: list[Block] = []
    for k, part in enumerate(content if isinstance(content, list) else ()):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"text": str(part.get("text") or "")})
        elif kind == "image_url":
            blocks.append(_image((part.get("image_url") or {}).get("url"), f"{where}.content[{k}]"))
        else:
            raise UnsupportedParameter(f"{where}.content[{k}]", f"Content parts of type {kind!r} cannot go to Bedrock.")
    return blocks or [{"text": ""}]


def _image(url: Any, where: str) -> Block:
    if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        if media in IMAGE_FORMATS:
            return {"image": {"format": IMAGE_FORMATS[media], "source": {"bytes": data}}}
    raise UnsupportedParameter(where, "Bedrock takes images inline only (data: URLs of png, jpeg, gif or webp).")


def _tool(tool: Any, i: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UnsupportedParameter(f"tools[{i}]", "Only function tools can go to Bedrock.")
    spec: dict[str, Any] = {"name": function["name"],
                            "inputSchema": {"json": function.get("parameters") or {"type": "object"}}}  # fmt: skip
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return None if choice is None else {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        return {"tool": {"name": choice["function"]["name"]}}
    raise UnsupportedParameter("tool_choice", f"Bedrock Converse cannot express tool_choice {choice!r}.")


# -- answers ------------------------------------------------------------------------------------


def openai_usage(usage: Any) -> dict[str, Any] | None:
    """Converse ``usage`` as an OpenAI ``usage`` (cache reads and writes are part of the prompt)."""
    if not isinstance(usage, dict):
        return None
    read = int(usage.get("cacheReadInputTokens") or 0)
    written = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + read + written
    completion = int(usage.get("outputTokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": read}}  # fmt: skip


def from_converse(data: dict[str, Any], model: str, request_id: str) -> dict[str, Any]:
    """A Converse answer as an OpenAI ``chat.completion``."""
    message = (data.get("output") or {}).get("message") or {}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if isinstance(block.get("text"), str):
            text.append(block["text"])
        use = block.get("toolUse")
        if isinstance(use, dict):
            function = {"name": str(use.get("name")), "arguments": json.dumps(use.get("input") or {})}
            calls.append({"id": str(use.get("toolUseId")), "type": "function", "function": function})
    joined = "".join(text)
    out_message: dict[str, Any] = {"role": "assistant", "content": joined or (None if calls else ""), "refusal": None}
    if calls:
        out_message["tool_calls"] = calls
    finish = STOP_REASONS.get(str(data.get("stopReason")), "stop")
    out = {"id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": int(time.time()), "model": model,
           "choices": [{"index": 0, "message": out_message, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    usage = openai_usage(data.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


class ConverseStreamTranslator:
    """ConverseStream events (``(event type, payload)``) in, OpenAI chat chunks out."""

    def __init__(self, model: str, request_id: str) -> None:
        self._base = {"id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model}  # fmt: skip
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self.finished = False
        self.usage: dict[str, Any] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def feed(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks for one event."""
        if kind == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "contentBlockStart":
            use = (payload.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                index = self._tools[int(payload.get("contentBlockIndex", 0))] = len(self._tools)
                call = {"index": index, "id": str(use.get("toolUseId")), "type": "function",
                        "function": {"name": str(use.get("name")), "arguments": ""}}  # fmt: skip
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "contentBlockDelta":
            delta = payload.get("delta") or {}
            if isinstance(delta.get("text"), str):
                return [self._chunk({"content": delta["text"]})]
            use = delta.get("toolUse")
            block = int(payload.get("contentBlockIndex", 0))
            if isinstance(use, dict) and block in self._tools:
                piece = {"index": self._tools[block], "function": {"arguments": str(use.get("input") or "")}}
                return [self._chunk({"tool_calls": [piece]})]
            return []
        if kind == "messageStop":
            self.finished = True
            return [self._chunk({}, STOP_REASONS.get(str(payload.get("stopReason")), "stop"))]
        if kind == "metadata":
            self.usage = openai_usage(payload.get("usage"))
            return [] if self.usage is None else [{**self._base, "choices": [], "usage": self.usage}]
        return []
