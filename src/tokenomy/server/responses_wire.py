"""Pure translation of the inbound Responses API request (``POST /v1/responses``), no I/O.

A Responses request is checked (:func:`check_request`), its input normalized into stored-item
form with ids (:func:`normalize_items`), and translated into the internal OpenAI chat shape
(:func:`to_chat`). Deployments that speak the Responses API natively get the request as it is;
the chat translation is what every stage reads and what other providers receive.

What does not map one to one, and what happens instead:

- ``instructions`` becomes a leading system message; ``max_output_tokens`` becomes
  ``max_completion_tokens``; ``text.format`` becomes ``response_format``; ``text.verbosity`` and
  ``reasoning.effort`` become ``verbosity`` and ``reasoning_effort``; ``top_logprobs`` asks for
  ``logprobs``. ``reasoning.summary`` has no chat counterpart and is ignored.
- Input items: messages (text, images, files), ``function_call`` and ``function_call_output``
  translate; ``reasoning`` items are left out (they are only meaningful to the model that wrote
  them). Any other item type, non-function tools, ``background``, ``conversation``, ``prompt``
  and unknown fields are *problems*: a 400 naming the field when the chosen deployment needs the
  translation, nothing when it takes the Responses API natively.
- ``store``, ``previous_response_id`` (the gateway keeps the state), ``include``,
  ``stream_options``, ``service_tier``, ``prompt_cache_key``, ``prompt_cache_retention``,
  ``truncation``, ``user``, ``safety_identifier`` and ``metadata`` need no translation.
"""

from __future__ import annotations

import secrets
from typing import Any

Problem = tuple[str, str]
Item = dict[str, Any]

#: Fields that need no translation: the gateway honours them itself or they change nothing here.
PASSIVE_FIELDS = frozenset(
    {"model", "input", "stream", "store", "previous_response_id", "include", "stream_options", "service_tier",
     "prompt_cache_key", "prompt_cache_retention", "truncation", "user", "safety_identifier", "metadata"}
)  # fmt: skip
#: Fields translated into the chat request.
TRANSLATED_FIELDS = frozenset(
    {"instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "max_output_tokens", "temperature",
     "top_p", "top_logprobs", "reasoning"}
)  # fmt: skip


class InvalidResponsesRequest(ValueError):
    """A malformed Responses request; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def new_id(prefix: str) -> str:
    """A random id in OpenAI's style (``resp_...``, ``msg_...``)."""
    return f"{prefix}_{secrets.token_hex(24)}"


# -- checks and normalization -------------------------------------------------------------------


def check_request(body: Any) -> dict[str, Any]:
    """The body when it is a well-formed Responses request; :class:`InvalidResponsesRequest` otherwise."""
    if not isinstance(body, dict):
        raise InvalidResponsesRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidResponsesRequest("Missing required parameter: 'model'.", "model")
    if "input" not in body and body.get("previous_response_id") is None:
        raise InvalidResponsesRequest("Missing required parameter: 'input'.", "input")
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        raise InvalidResponsesRequest("Invalid type for 'input': expected a string or an array of items.", "input")
    for key, kind in (("instructions", str), ("previous_response_id", str), ("tools", list), ("metadata", dict),
                      ("text", dict), ("reasoning", dict)):  # fmt: skip
        if body.get(key) is not None and not isinstance(body[key], kind):
            raise InvalidResponsesRequest(f"Invalid type for '{key}'.", key)
    for key in ("stream", "store", "parallel_tool_calls"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise InvalidResponsesRequest(f"Invalid type for '{key}': expected a boolean.", key)
    for key, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        v = body.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high):
            raise InvalidResponsesRequest(f"Invalid '{key}': expected a number between {low} and {high}.", key)
    for key, low in (("max_output_tokens", 16), ("top_logprobs", 0)):
        v = body.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise InvalidResponsesRequest(f"Invalid '{key}': expected an integer of at least {low}.", key)
    return body


def normalize_items(value: Any) -> list[Item]:
    """``input`` as stored items: every message a ``message`` item with a content list, every item an id."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items: list[Item] = []
    for i, raw in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(raw, dict):
            raise InvalidResponsesRequest(f"Invalid type for '{where}': expected an object.", where)
        kind = raw.get("type", "message")
        if kind == "message":
            items.append(_message_item(raw, where))
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(raw.get(key), str):
                    raise InvalidResponsesRequest(f"Missing required parameter: '{where}.{key}'.", f"{where}.{key}")
            items.append({"id": raw.get("id") or new_id("fc"), "status": "completed", **raw})
        elif kind == "function_call_output":
            if not isinstance(raw.get("call_id"), str):
                raise InvalidResponsesRequest(f"Missing required parameter: '{where}.call_id'.", f"{where}.call_id")
            if not isinstance(raw.get("output"), str | list):
                raise InvalidResponsesRequest(f"Missing required parameter: '{where}.output'.", f"{where}.output")
            items.append({"id": raw.get("id") or new_id("fco"), "status": "completed", **raw})
        elif isinstance(kind, str):
            items.append(dict(raw))  # other item types: kept; the translation reports them
        else:
            raise InvalidResponsesRequest(f"Invalid type for '{where}.type'.", f"{where}.type")
    return items


def _message_item(raw: Item, where: str) -> Item:
    role = raw.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidResponsesRequest(
            f"Invalid value for '{where}.role': expected one of user, assistant, system, developer.", f"{where}.role"
        )
    content = raw.get("content")
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        parts: list[Item] = [{"type": text_type, "text": content}]
    elif isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in content):
        parts = [dict(p) for p in content]
    else:
        raise InvalidResponsesRequest(
            f"Invalid type for '{where}.content': expected a string or an array of content parts.",
            f"{where}.content",
        )
    if role == "assistant":
        for part in parts:
            if part["type"] == "output_text":
                part.setdefault("annotations", [])
    item: Item = {**raw, "type": "message", "role": role, "content": parts}
    item.setdefault("id", new_id("msg"))
    item.setdefault("status", "completed")
    return item


# -- request ------------------------------------------------------------------------------------


def to_chat(body: dict[str, Any], items: list[Item]) -> tuple[dict[str, Any], list[Problem]]:
    """The chat request for ``body`` over the (history and new) ``items``, and what it could not carry."""
    problems: list[Problem] = []
    for key in body:
        if key not in PASSIVE_FIELDS and key not in TRANSLATED_FIELDS and body[key] is not None:
            problems.append((key, f"The parameter '{key}' has no chat-completions counterpart"))
    if body.get("background") is False:
        problems = [p for p in problems if p[0] != "background"]
    messages: list[Item] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        _item_to_chat(item, f"input[{i}]", messages, problems)
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for key in ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "service_tier"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("top_logprobs"):
        chat["logprobs"], chat["top_logprobs"] = True, body["top_logprobs"]
    tools = _tools(body.get("tools"), problems)
    if tools:
        chat["tools"] = tools
        if body.get("tool_choice") is not None:
            chat["tool_choice"] = _tool_choice(body["tool_choice"], problems)
    else:
        chat.pop("parallel_tool_calls", None)  # chat refuses it without tools
    _text(body.get("text"), chat, problems)
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, problems


def _item_to_chat(item: Item, where: str, messages: list[Item], problems: list[Problem]) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item["role"]
        if role == "assistant":
            text = "".join(str(p.get("text") or p.get("refusal") or "") for p in item["content"])
            message = _assistant(messages)
            message["content"] = (message.get("content") or "") + text or None
            return
        parts = [_part(p, f"{where}.content[{k}]", problems) for k, p in enumerate(item["content"])]
        kept = [p for p in parts if p is not None]
        single = len(kept) == 1 and kept[0]["type"] == "text"
        messages.append({"role": role, "content": kept[0]["text"] if single else kept})
    elif kind == "function_call":
        call = {"id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]}}  # fmt: skip
        _assistant(messages).setdefault("tool_calls", []).append(call)
    elif kind == "function_call_output":
        messages.append(
            {"role": "tool", "tool_call_id": item["call_id"], "content": _output_text(item, where, problems)}
        )
    elif kind != "reasoning":
        problems.append((f"{where}.type", f"Input items of type {kind!r} have no chat-completions counterpart"))


def _assistant(messages: list[Item]) -> Item:
    """The assistant message to extend: the last one, unless something followed it."""
    if messages and messages[-1]["role"] == "assistant":
        return messages[-1]
    message: Item = {"role": "assistant", "content": None}
    messages.append(message)
    return message


def _part(part: Item, where: str, problems: list[Problem]) -> Item | None:
    kind = part["type"]
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: Item = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        file: Item = {"file_data": part["file_data"]}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    if kind == "input_file" and isinstance(part.get("file_id"), str):
        return {"type": "file", "file": {"file_id": part["file_id"]}}
    problems.append((where, f"Content parts of type {kind!r} (without inline data) cannot be translated"))
    return None


def _output_text(item: Item, where: str, problems: list[Problem]) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    texts = []
    for k, part in enumerate(output or ()):
        if isinstance(part, dict) and part.get("type") in ("input_text", "output_text"):
            texts.append(str(part.get("text") or ""))
        else:
            problems.append((f"{where}.output[{k}]", "Tool outputs other than text cannot be translated"))
    return "\n".join(texts)


def _tools(tools: Any, problems: list[Problem]) -> list[Item]:
    out = []
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            kind = tool.get("type") if isinstance(tool, dict) else None
            problems.append((f"tools[{i}]", f"Tools of type {kind!r} have no chat-completions counterpart"))
            continue
        function: Item = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
        for key in ("description", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, problems: list[Problem]) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    problems.append(("tool_choice", "Only 'auto', 'none', 'required' and function tool choices can be translated"))
    return "auto"


def _text(text: Any, chat: dict[str, Any], problems: list[Problem]) -> None:
    if not isinstance(text, dict):
        return
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return
    if fmt["type"] == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt["type"] == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema: Item = {"name": fmt.get("name") or "output", "schema": fmt["schema"]}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        problems.append(("text.format", f"The text format {fmt.get('type')!r} cannot be translated"))
