"""Pure translation for the inbound Messages API (``POST /v1/messages``), no I/O.

An Anthropic SDK request becomes the internal OpenAI chat shape
(:func:`messages_request_to_openai`); the OpenAI-shaped answer becomes an Anthropic message
(:func:`openai_response_to_messages`) or, streamed, the event sequence the real API emits
(:class:`MessagesStreamEncoder`).

What does not map one to one, and what happens instead:

- Every top-level field has a fate in :data:`MESSAGES_FIELDS` (translated, not needed, or
  refused). Refused and unknown fields, server tools, URL documents and block types chat has no
  place for are *problems* (:func:`untranslated`): answered with a 400 naming the field when the
  chosen deployment needs the translation, nothing when it speaks the Messages API itself.
- ``output_config.format`` (JSON schema) becomes ``response_format``; ``thinking`` (enabled or
  adaptive) and ``output_config.effort`` become ``reasoning_effort``; ``cache_control`` needs
  nothing (OpenAI-compatible servers cache prompt prefixes automatically).
- Thinking blocks in assistant turns are dropped; ``tool_result`` blocks become ``tool``
  messages placed before the rest of their user turn, ``is_error`` results are prefixed with
  ``Error:``, and images inside a tool result move to a user message right after the tool
  messages (OpenAI tool messages hold text only).
- Documents: base64 PDFs become ``file`` parts, plain-text documents become text; URL sources
  are refused. Server tools (``web_search_...`` and the like) are refused.
- Answers: tool-call arguments that are not a JSON object become ``{"_raw": "<arguments>"}``;
  ``stop_sequence`` is never reported (OpenAI does not say which stop sequence matched);
  reasoning text is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from tokenomy.server.anthropic_wire_stream import (
    Event,
    MessagesStreamEncoder,
    anthropic_usage,
    error_event,
    stop_reason,
)

__all__ = [
    "MESSAGES_FIELDS",
    "Event",
    "InvalidMessagesRequest",
    "MessagesStreamEncoder",
    "error_event",
    "messages_request_to_openai",
    "openai_response_to_messages",
    "untranslated",
]

Problem = tuple[str, str]

#: The fate of each Messages API request field when the model is served through chat completions.
MESSAGES_FIELDS: dict[str, str] = {
    "model": "translated", "max_tokens": "translated", "messages": "translated", "system": "translated",
    "stop_sequences": "translated", "stream": "translated", "temperature": "translated", "top_p": "translated",
    "tools": "translated", "tool_choice": "translated", "metadata": "translated",  # user_id becomes user
    "output_config": "translated",  # format -> response_format, effort -> reasoning_effort
    "thinking": "translated",  # enabled/adaptive -> reasoning_effort
    "cache_control": "not needed",  # prompt prefixes are cached automatically
    "service_tier": "not needed",  # chat completions run on the standard tier
    "top_k": "refused", "container": "refused", "diagnostics": "refused", "inference_geo": "refused",
    "speed": "refused", "user_profile_id": "refused", "workspace_id": "refused", "mcp_servers": "refused",
    "context_management": "refused",
}  # fmt: skip


def untranslated(body: dict[str, Any]) -> list[Problem]:
    """Top-level fields the chat translation cannot carry (refused or unknown), as ``(param, message)``."""
    problems: list[Problem] = []
    for key, value in body.items():
        fate = MESSAGES_FIELDS.get(key)
        if value is None or fate in ("translated", "not needed") or (key == "speed" and value == "standard"):
            continue
        what = "is not a Messages API parameter" if fate is None else "has no chat-completions counterpart"
        problems.append((key, f"The parameter '{key}' {what}"))
    return problems


class InvalidMessagesRequest(ValueError):
    """A malformed Messages API request; ``param`` is the dotted path of the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _fail(param: str, problem: str) -> InvalidMessagesRequest:
    return InvalidMessagesRequest(f"{param}: {problem}", param)


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if isinstance(value, str) and (value or not required):
        return value
    if value is None and not required:
        return ""
    raise _fail(
        f"{where}.{key}" if where else key,
        "Field required (a non-empty string)." if required else "Input should be a string.",
    )


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(key, f"Input should be a number between {low:g} and {high:g}.")
    return value


# -- request ------------------------------------------------------------------------------------


def messages_request_to_openai(body: dict[str, Any], problems: list[Problem] | None = None) -> dict[str, Any]:
    """A Messages API request as an OpenAI chat request; :class:`InvalidMessagesRequest` if malformed.

    What is valid but cannot be translated raises too, unless ``problems`` is given: then it is
    recorded there and left out (a deployment that speaks the Messages API gets it anyway).
    """
    if not isinstance(body, dict):
        raise InvalidMessagesRequest("The request body must be a JSON object.")
    model = _str(body, "model", "")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _fail("max_tokens", "Field required (an integer of at least 1).")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "Field required (a list of at least one message).")
    out_messages: list[dict[str, Any]] = []
    system = _system(body.get("system"))
    if system:
        out_messages.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _fail(where, "Input should be an object with 'role' and 'content'.")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _fail(f"{where}.role", f"Input should be 'user' or 'assistant', not {role!r}.")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise _fail(f"{where}.content", "Input should be a string or a list of content blocks.")
        if role == "user":
            out_messages.extend(_user_turn(content, f"{where}.content", problems))
        else:
            out_messages.extend(_assistant_turn(content, f"{where}.content", problems))
    request: dict[str, Any] = {"model": model, "messages": out_messages, "max_tokens": max_tokens}
    _sampling(body, request)
    tools = _tools(body.get("tools"), problems)
    if tools:
        request["tools"] = tools
    if body.get("tool_choice") is not None:
        choice, parallel = _tool_choice(body["tool_choice"])
        if tools:  # OpenAI refuses tool_choice and parallel_tool_calls without tools
            request["tool_choice"] = choice
            if parallel is False:
                request["parallel_tool_calls"] = False
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("stream", "Input should be a boolean.")
    if stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    response_format = _output_format(body.get("output_config"))
    if response_format is not None:
        request["response_format"] = response_format
    effort = _effort(body.get("thinking"), body.get("output_config"))
    if effort is not None:
        request["reasoning_effort"] = effort
    return request


def _unsupported(problems: list[Problem] | None, param: str, message: str) -> None:
    """Something valid the chat translation cannot carry: an error, or a problem recorded."""
    if problems is None:
        raise _fail(param, message)
    problems.append((param, message))


def _effort(thinking: Any, config: Any) -> str | None:
    """``reasoning_effort`` for ``thinking`` and ``output_config.effort``."""
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str):
        return {"max": "high", "xhigh": "high"}.get(effort, effort)
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def _sampling(body: dict[str, Any], request: dict[str, Any]) -> None:
    for key in ("temperature", "top_p"):
        value = _number(body, key, 0, 1)
        if value is not None:
            request[key] = value
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise _fail("top_k", "Input should be a non-negative integer.")  # valid, but dropped
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _fail("stop_sequences", "Input should be a list of strings.")
        if stops:
            request["stop"] = stops
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _fail("metadata", "Input should be an object.")
        user = _str(metadata, "user_id", "metadata", required=False)
        if user:
            request["user"] = user


def _system(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, list):
        raise _fail("system", "Input should be a string or a list of text blocks.")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail(f"system.{i}", "Input should be a text block ({'type': 'text', 'text': ...}).")
        texts.append(_str(block, "text", f"system.{i}", required=False))
    return "\n\n".join(t for t in texts if t)


def _blocks(content: str | list[Any], where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _fail(f"{where}.{j}", "Input should be a content block with a 'type'.")
    return content


def _user_turn(content: str | list[Any], where: str, problems: list[Problem] | None) -> list[dict[str, Any]]:
    """One user turn: tool results as ``tool`` messages first, then one user message with the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    late_images: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.{j}"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _str(block, "text", at, required=False)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "document":
            document = _document(block, at, problems)
            if document is not None:
                parts.append(document)
        elif kind == "tool_result":
            message, images = _tool_result(block, at, problems)
            results.append(message)
            late_images.extend(images)
        elif kind in ("tool_use", "thinking"):
            hint = " (it belongs in an assistant turn)"
            raise _fail(f"{at}.type", f"Blocks of type {kind!r} are not supported in user turns{hint}.")
        else:
            _unsupported(problems, f"{at}.type", f"Blocks of type {kind!r} have no chat-completions counterpart.")
    parts = late_images + parts
    if parts:
        single = len(parts) == 1 and parts[0]["type"] == "text"
        results.append({"role": "user", "content": parts[0]["text"] if single else parts})
    return results


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url" and isinstance(source, dict):
        url = _str(source, "url", f"{where}.source")
    elif kind == "base64" and isinstance(source, dict):
        media = _str(source, "media_type", f"{where}.source")
        url = f"data:{media};base64,{_str(source, 'data', f'{where}.source')}"
    else:
        raise _fail(f"{where}.source", "Input should be a 'base64' or 'url' image source.")
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: dict[str, Any], where: str, problems: list[Problem] | None) -> dict[str, Any] | None:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    title = block.get("title")
    if isinstance(block.get("citations"), dict) and block["citations"].get("enabled"):
        _unsupported(problems, f"{where}.citations", "Citations have no chat-completions counterpart.")
    if kind == "base64" and isinstance(source, dict) and source.get("media_type") == "application/pdf":
        name = f"{title}.pdf" if isinstance(title, str) and title else "document.pdf"
        data = _str(source, "data", f"{where}.source")
        return {"type": "file", "file": {"filename": name, "file_data": f"data:application/pdf;base64,{data}"}}
    if kind == "text" and isinstance(source, dict):
        text = _str(source, "data", f"{where}.source", required=False)
        return {"type": "text", "text": f"{title}\n\n{text}" if isinstance(title, str) and title else text}
    _unsupported(problems, f"{where}.source", "Only base64 PDF and plain-text document sources can be translated.")
    return None


def _tool_result(
    block: dict[str, Any], where: str, problems: list[Problem] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    call_id = _str(block, "tool_use_id", where)
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(_blocks(content, f"{where}.content")):
            if item["type"] == "text":
                texts.append(_str(item, "text", f"{where}.content.{k}", required=False))
            elif item["type"] == "image":
                images.append(_image(item, f"{where}.content.{k}"))
            elif item["type"] == "document":
                document = _document(item, f"{where}.content.{k}", problems)
                if document is not None:
                    images.append(document)
            else:
                at = f"{where}.content.{k}.type"
                _unsupported(problems, at, f"Blocks of type {item['type']!r} cannot be translated.")
    elif content is not None:
        raise _fail(f"{where}.content", "Input should be a string or a list of content blocks.")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _assistant_turn(content: str | list[Any], where: str, problems: list[Problem] | None) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}] if content else []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(_str(block, "text", at, required=False))
        elif kind == "tool_use":
            tool_input = block.get("input", {})
            if not isinstance(tool_input, dict):
                raise _fail(f"{at}.input", "Input should be an object.")
            arguments = json.dumps(tool_input, ensure_ascii=False)
            calls.append(
                {
                    "id": _str(block, "id", at),
                    "type": "function",
                    "function": {"name": _str(block, "name", at), "arguments": arguments},
                }
            )
        elif kind not in ("thinking", "redacted_thinking"):  # thinking means nothing to other models
            _unsupported(problems, f"{at}.type", f"Blocks of type {kind!r} have no chat-completions counterpart.")
    text = "".join(texts)
    if not text and not calls:
        return []  # nothing left to say (e.g. only thinking)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tools(tools: Any, problems: list[Problem] | None) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _fail("tools", "Input should be a list of tools.")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _fail(where, "Input should be an object.")
        if tool.get("type") not in (None, "custom"):
            why = f"Server tools ({tool.get('type')!r}) have no chat-completions counterpart."
            _unsupported(problems, f"{where}.type", why)
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"{where}.input_schema", "Field required (a JSON schema object).")
        function: dict[str, Any] = {"name": _str(tool, "name", where), "parameters": schema}
        description = _str(tool, "description", where, required=False)
        if description:
            function["description"] = description
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """``(OpenAI tool_choice, parallel_tool_calls or None)``."""
    if not isinstance(choice, dict):
        raise _fail("tool_choice", "Input should be an object with a 'type'.")
    kind = choice.get("type")
    mapped: Any
    if kind == "auto":
        mapped = "auto"
    elif kind == "any":
        mapped = "required"
    elif kind == "none":
        mapped = "none"
    elif kind == "tool":
        mapped = {"type": "function", "function": {"name": _str(choice, "name", "tool_choice")}}
    else:
        raise _fail("tool_choice.type", f"Input should be 'auto', 'any', 'tool' or 'none', not {kind!r}.")
    return mapped, (False if choice.get("disable_parallel_tool_use") is True else None)


def _output_format(config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    if not isinstance(config, dict):
        raise _fail("output_config", "Input should be an object.")
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise _fail("output_config.format", "Input should be {'type': 'json_schema', 'schema': {...}}.")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


# -- response -----------------------------------------------------------------------------------


def openai_response_to_messages(resp: dict[str, Any], model_name: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic message (lenient: missing parts become empty)."""
    choices = resp.get("choices") if isinstance(resp, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content: list[dict[str, Any]] = []
    text = _message_text(message.get("content")) or _message_text(message.get("refusal"))
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        call_id = call.get("id") if isinstance(call, dict) else None
        content.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{k}",
                "name": str(function.get("name") or ""),
                "input": _tool_input(function.get("arguments")),
            }
        )
    has_calls = any(block["type"] == "tool_use" for block in content)
    raw_id = str(resp.get("id") or "0") if isinstance(resp, dict) else "0"
    return {
        "id": raw_id if raw_id.startswith("msg_") else f"msg_{raw_id.removeprefix('chatcmpl-')}",
        "type": "message",
        "role": "assistant",
        "model": model_name,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), has_calls),
        "stop_sequence": None,
        "usage": anthropic_usage(resp.get("usage") if isinstance(resp, dict) else None),
    }


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        return {"_raw": str(arguments)}
    return value if isinstance(value, dict) else {"_raw": str(arguments)}
