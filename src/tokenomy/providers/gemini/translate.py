"""OpenAI chat completions <-> Google Gemini ``generateContent`` (pure, no I/O).

Requests: :func:`to_gemini_request`; answers: :func:`from_gemini_response` or, streamed,
:class:`GeminiStreamTranslator`; embeddings: :func:`to_embed_request` / :func:`from_embed_response`.

What does not map one to one, and what happens instead:

- System and developer messages become ``systemInstruction``; ``assistant`` is ``model``; tool
  results become ``functionResponse`` parts (a JSON object answer as it is, other text as
  ``{"result": text}``), named after the call they answer.
- ``response_format`` becomes ``responseMimeType`` (and ``responseJsonSchema``); ``n`` becomes
  ``candidateCount``; ``logprobs``/``top_logprobs`` become ``responseLogprobs``/``logprobs``;
  ``reasoning_effort`` becomes ``thinkingConfig.thinkingBudget`` (low 1,024, medium 8,192,
  high 24,576 tokens; none/minimal 0).
- Images: ``data:`` URLs become ``inlineData``; other URLs are refused (Gemini fetches none).
- Gemini gives function calls no ids (or its own): the answer's calls get ``call_<n>`` ids.
- Every other top-level field has its fate in :data:`CHAT_FIELDS`; unknown ones are refused.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

from tokenomy.providers import chat_request

Part = dict[str, Any]

CHAT_FIELDS: dict[str, str] = {
    "messages": "translated", "model": "translated", "max_completion_tokens": "translated",
    "max_tokens": "translated", "temperature": "translated", "top_p": "translated", "stop": "translated",
    "stream": "translated", "tools": "translated", "tool_choice": "translated", "response_format": "translated",
    "n": "translated", "seed": "translated", "presence_penalty": "translated", "frequency_penalty": "translated",
    "logprobs": "translated", "top_logprobs": "translated", "reasoning_effort": "translated",
    "parallel_tool_calls": "not needed",  # Gemini decides how many calls to make
    "stream_options": "not needed", "metadata": "not needed", "user": "not needed", "safety_identifier": "not needed",
    "prompt_cache_key": "not needed", "prompt_cache_retention": "not needed", "prompt_cache_options": "not needed",
    "service_tier": "not needed", "store": "not needed",
    "logit_bias": "refused", "audio": "refused", "modalities": "refused", "functions": "refused",
    "function_call": "refused", "prediction": "refused", "verbosity": "refused", "web_search_options": "refused",
    "moderation": "refused",
}  # fmt: skip
_HARMLESS: dict[str, tuple[Any, ...]] = {"logit_bias": ({},), "modalities": (["text"],), "store": (False,),
                                         "service_tier": ("auto", "default")}  # fmt: skip
THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
                  "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
                  "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter"}  # fmt: skip


class UnsupportedParameter(ValueError):
    """A request parameter Gemini cannot honour; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


# -- request ------------------------------------------------------------------------------------


def to_gemini_request(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as a ``generateContent`` body."""
    refused = chat_request.refused_field(body, CHAT_FIELDS, _HARMLESS, "Gemini")
    if refused is not None:
        raise UnsupportedParameter(*refused)
    system, contents = _contents(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    tools = body.get("tools")
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(t, i) for i, t in enumerate(tools)]}]
        choice = _tool_config(body.get("tool_choice"))
        if choice is not None:
            out["toolConfig"] = {"functionCallingConfig": choice}
    return out


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    simple = (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"), ("n", "candidateCount"),
              ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"))  # fmt: skip
    for ours, theirs in simple:
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs"):
            config["logprobs"] = body["top_logprobs"]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt["type"] == "json_schema" else None
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGETS:
            raise UnsupportedParameter("reasoning_effort", f"Unknown reasoning_effort {effort!r}.")
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    return config


def _contents(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise UnsupportedParameter("messages", "'messages' must be a non-empty list.")
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.append(chat_request.text_of(message.get("content")))
            continue
        if role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            part = {"functionResponse": {"name": names.get(call_id, call_id), "response": _tool_answer(message)}}
            _append(contents, "user", [part])
        elif role == "assistant":
            parts: list[Part] = []
            text = chat_request.text_of(message.get("content"))
            if text:
                parts.append({"text": text})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                arguments = chat_request.arguments_object(function.get("arguments"))
                parts.append({"functionCall": {"name": function.get("name"), "args": arguments}})
            if parts:
                _append(contents, "model", parts)
        elif role == "user":
            _append(contents, "user", _user_parts(message.get("content"), where))
        else:
            raise UnsupportedParameter(f"{where}.role", f"Unknown message role {role!r}.")
    return system, contents


def _append(contents: list[dict[str, Any]], role: str, parts: list[Part]) -> None:
    chat_request.append_turn(contents, role, "parts", parts)  # Gemini wants turns to alternate


def _user_parts(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[Part] = []
    for k, part in enumerate(content if isinstance(content, list) else ()):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": str(part.get("text") or "")})
        elif kind == "image_url":
            parts.append(_inline((part.get("image_url") or {}).get("url"), f"{where}.content[{k}]"))
        elif kind == "file":
            parts.append(_inline((part.get("file") or {}).get("file_data"), f"{where}.content[{k}]"))
        else:
            raise UnsupportedParameter(f"{where}.content[{k}]", f"Content parts of type {kind!r} cannot go to Gemini.")
    return parts or [{"text": ""}]


def _inline(url: Any, where: str) -> Part:
    if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return {"inlineData": {"mimeType": head, "data": data}}
    raise UnsupportedParameter(where, "Gemini takes images and files inline only (data: URLs with base64).")


def _tool_answer(message: dict[str, Any]) -> dict[str, Any]:
    text = chat_request.text_of(message.get("content"))
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def _declaration(tool: Any, i: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UnsupportedParameter(f"tools[{i}]", "Only function tools can go to Gemini.")
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        out["parametersJsonSchema"] = function["parameters"]
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return None
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    raise UnsupportedParameter("tool_choice", f"Unknown tool_choice {choice!r}.")


# -- answers ------------------------------------------------------------------------------------


def openai_usage(meta: Any) -> dict[str, Any] | None:
    """Gemini ``usageMetadata`` as an OpenAI ``usage`` (thinking tokens count as completion)."""
    if not isinstance(meta, dict):
        return None
    prompt = int(meta.get("promptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _message(parts: Any, calls_seen: int) -> tuple[str, list[dict[str, Any]]]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought"):
            continue  # thought summaries are not part of the answer
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append({"id": str(call.get("id") or f"call_{calls_seen + len(calls)}"), "type": "function",
                          "function": {"name": str(call.get("name")),
                                       "arguments": json.dumps(call.get("args") or {})}})  # fmt: skip
    return "".join(text), calls


def _finish(reason: Any, has_calls: bool) -> str | None:
    if reason is None:
        return None
    return "tool_calls" if has_calls else FINISH_REASONS.get(str(reason), "stop")


def from_gemini_response(data: dict[str, Any], model: str, request_id: str) -> dict[str, Any]:
    """A ``generateContent`` answer as an OpenAI ``chat.completion``."""
    choices = []
    for i, candidate in enumerate(data.get("candidates") or ()):
        text, calls = _message((candidate.get("content") or {}).get("parts"), 0)
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
        if calls:
            message["tool_calls"] = calls
        finish = _finish(candidate.get("finishReason") or "STOP", bool(calls))
        choices.append({"index": candidate.get("index", i), "message": message, "logprobs": None,
                        "finish_reason": finish})  # fmt: skip
    if not choices:
        feedback = data.get("promptFeedback") or {}
        raise ValueError(f"Gemini returned no answer (blocked: {feedback.get('blockReason', 'unknown')}).")
    out = {"id": f"chatcmpl-{data.get('responseId') or request_id}", "object": "chat.completion",
           "created": int(time.time()), "model": model, "choices": choices}  # fmt: skip
    usage = openai_usage(data.get("usageMetadata"))
    if usage is not None:
        out["usage"] = usage
    return out


class GeminiStreamTranslator:
    """``streamGenerateContent`` chunks in, OpenAI ``chat.completion.chunk`` dicts out."""

    def __init__(self, model: str, request_id: str) -> None:
        self._base = {"id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model}  # fmt: skip
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}
        self.usage: dict[str, Any] | None = None
        self.finished = False

    def feed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks for one streamed ``GenerateContentResponse``."""
        out: list[dict[str, Any]] = []
        for i, candidate in enumerate(data.get("candidates") or ()):
            index = int(candidate.get("index", i))
            text, calls = _message((candidate.get("content") or {}).get("parts"), self._calls.get(index, 0))
            delta: dict[str, Any] = {}
            if index not in self._started:
                self._started.add(index)
                delta["role"] = "assistant"
            if text:
                delta["content"] = text
            if calls:
                first = self._calls.get(index, 0)
                delta["tool_calls"] = [{"index": first + k, **call} for k, call in enumerate(calls)]
                self._calls[index] = first + len(calls)
            if delta:
                out.append(self._chunk(index, delta, None))
            finish = _finish(candidate.get("finishReason"), bool(self._calls.get(index)))
            if finish is not None:
                self.finished = True
                out.append(self._chunk(index, {}, finish))
        usage = openai_usage(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        return out

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**self._base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def usage_chunk(self) -> dict[str, Any] | None:
        """The final usage chunk (``choices: []``), when Gemini reported usage."""
        return None if self.usage is None else {**self._base, "choices": [], "usage": self.usage}


# -- embeddings ---------------------------------------------------------------------------------


def to_embed_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI embeddings request as ``batchEmbedContents`` (text inputs only)."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise UnsupportedParameter("input", "Gemini embeds text: give a string or a list of strings.")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise UnsupportedParameter("encoding_format", "Use 'float' or 'base64'.")
    request: dict[str, Any] = {"model": f"models/{upstream_model}"}
    if body.get("dimensions") is not None:
        request["outputDimensionality"] = body["dimensions"]
    return {"requests": [{**request, "content": {"parts": [{"text": text}]}} for text in items]}


def from_embed_response(data: dict[str, Any], model: str, prompt_tokens: int, base64_out: bool) -> dict[str, Any]:
    """A ``batchEmbedContents`` answer as an OpenAI embeddings ``list`` (floats, or base64 float32 bytes)."""
    vectors: list[Any] = [e.get("values") or [] for e in data.get("embeddings") or ()]
    if base64_out:
        vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii") for v in vectors]
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
