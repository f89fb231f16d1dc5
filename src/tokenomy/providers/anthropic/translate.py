"""OpenAI chat completions <-> Anthropic Messages API, for an Anthropic upstream (pure, no I/O).

Requests go out with :func:`to_anthropic_request`; answers come back with
:func:`from_anthropic_response` or, streamed, :class:`AnthropicStreamTranslator`.

What does not map one to one, and what happens instead:

- ``n > 1``, ``logprobs``, ``top_logprobs``, ``seed``, non-zero ``frequency_penalty`` /
  ``presence_penalty``, ``logit_bias``, audio output and the legacy ``functions`` /
  ``function_call`` raise :class:`UnsupportedParameter` (the edge answers 400 with ``param``).
- ``temperature`` is clamped to Anthropic's range 0..1.
- System and developer messages, wherever they appear, are hoisted into ``system`` in order.
- Consecutive same-role turns are merged (``tool`` messages are user turns of ``tool_result``
  blocks, placed first); empty or whitespace-only text parts, and turns left empty, are dropped
  (Anthropic rejects them).
- ``response_format`` ``json_object`` / ``json_schema`` becomes an instruction appended to
  ``system`` (with the schema as JSON); the answer is not checked against the schema. Native
  structured outputs exist only on newer Claude models, so the instruction is the portable choice.
- ``parallel_tool_calls: false`` becomes ``disable_parallel_tool_use`` on ``tool_choice``;
  function ``strict``, message ``name`` and image ``detail`` are dropped.
- ``reasoning_effort`` becomes ``thinking`` with a budget (low 1,024, medium 4,096, high 16,384
  tokens). Every other top-level field has its fate in :data:`.chat_fields.CHAT_FIELDS`; unknown
  ones are refused.
- Tool-call ``arguments`` that are not a JSON object are sent as ``{"_raw": "<arguments>"}``.
- Images: ``data:`` URLs (base64, jpeg/png/gif/webp) and http(s) URLs; PDFs as ``file`` parts
  with base64 ``file_data``. ``cache_control`` on content parts is passed through.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenomy.providers.anthropic.chat_fields import refused_field
from tokenomy.providers.anthropic.translate_stream import (
    AnthropicStreamTranslator,
    UpstreamStreamError,
    completion_id,
    finish_reason,
    json_text,
    openai_usage,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "AnthropicStreamTranslator",
    "UnsupportedParameter",
    "UpstreamStreamError",
    "from_anthropic_response",
    "to_anthropic_request",
]

#: ``max_tokens`` sent when the client gave none (Anthropic requires it).
DEFAULT_MAX_TOKENS = 4096
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else: no prose, no Markdown code fences."

Block = dict[str, Any]


class UnsupportedParameter(ValueError):
    """A request parameter (or part of one) the Anthropic Messages API cannot honour."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


# -- request ------------------------------------------------------------------------------------


def to_anthropic_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI chat request as an Anthropic ``/v1/messages`` body for ``upstream_model``.

    Raises :class:`UnsupportedParameter` for what Anthropic cannot do (see the module docstring).
    """
    _reject_unsupported(body)
    refused = refused_field(body)
    if refused is not None:
        raise UnsupportedParameter(*refused)
    system, messages = _messages(body.get("messages"))
    out: dict[str, Any] = {"model": upstream_model, "max_tokens": _max_tokens(body), "messages": messages}
    _thinking(body, out)
    instruction = _format_instruction(body.get("response_format"))
    if instruction:
        system.append({"type": "text", "text": instruction})
    if system:
        out["system"] = system if any("cache_control" in b for b in system) else "\n\n".join(b["text"] for b in system)
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out["temperature"] = min(temperature, 1.0)
    if _is_number(body.get("top_p")):
        out["top_p"] = body["top_p"]
    stop = _stop(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    if body.get("stream") is True:
        out["stream"] = True
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    return out


#: ``reasoning_effort`` -> Anthropic thinking budget (tokens); none/minimal: no thinking.
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}


def _thinking(body: dict[str, Any], out: dict[str, Any]) -> None:
    effort = body.get("reasoning_effort")
    if effort is None or effort in ("none", "minimal"):
        return
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise UnsupportedParameter("reasoning_effort", f"Unknown reasoning_effort {effort!r}: use low, medium or high.")
    if body.get("max_completion_tokens") is None and body.get("max_tokens") is None:
        out["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    elif out["max_tokens"] <= budget:
        raise UnsupportedParameter(
            "max_tokens", f"reasoning_effort {effort!r} thinks for up to {budget} tokens: max_tokens must exceed that."
        )
    if body.get("temperature") not in (None, 1):
        raise UnsupportedParameter("temperature", "Anthropic models take no temperature other than 1 while thinking.")
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _reject_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise UnsupportedParameter("n", "Anthropic models return one choice per request; 'n' must be 1.")
    checks = (
        ("logprobs", bool(body.get("logprobs")), "Anthropic models do not return log probabilities."),
        ("top_logprobs", bool(body.get("top_logprobs")), "Anthropic models do not return log probabilities."),
        ("seed", body.get("seed") is not None, "The Anthropic Messages API has no 'seed' parameter."),
        ("frequency_penalty", bool(body.get("frequency_penalty")), "Anthropic models have no frequency penalty."),
        ("presence_penalty", bool(body.get("presence_penalty")), "Anthropic models have no presence penalty."),
        ("logit_bias", bool(body.get("logit_bias")), "Anthropic models do not accept 'logit_bias'."),
        ("audio", body.get("audio") is not None, "Anthropic models do not produce audio."),
        ("modalities", "audio" in (body.get("modalities") or ()), "Anthropic models do not produce audio."),
        ("functions", body.get("functions") is not None, "Legacy 'functions' are not supported; use 'tools'."),
        ("function_call", body.get("function_call") is not None, "Legacy 'function_call' is not supported."),
    )
    for param, bad, why in checks:
        if bad:
            raise UnsupportedParameter(param, f"{why} Remove '{param}' or send the request to another model.")


def _max_tokens(body: dict[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UnsupportedParameter(key, f"'{key}' must be a positive integer.")
        return value
    return DEFAULT_MAX_TOKENS


def _messages(raw: Any) -> tuple[list[Block], list[dict[str, Any]]]:
    """``(system blocks, turns)``: consecutive same-role turns merged, as Anthropic requires."""
    if not isinstance(raw, list) or not raw:
        raise UnsupportedParameter("messages", "'messages' must be a non-empty list.")
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise UnsupportedParameter(where, f"'{where}' must be an object.")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            side, blocks = "user", _user_blocks(message.get("content"), f"{where}.content")
        elif role == "assistant":
            side, blocks = "assistant", _assistant_blocks(message, where)
        elif role == "tool":
            side, blocks = "user", [_tool_result(message, where)]
        else:
            hint = " Legacy 'function' messages are not supported; use 'tool'." if role == "function" else ""
            raise UnsupportedParameter(f"{where}.role", f"Unsupported role {role!r}.{hint}")
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty one says nothing anyway
        if turns and turns[-1]["role"] == side:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": side, "content": blocks})
    for turn in turns:  # tool results must open the user turn that answers the tool calls
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    return system, turns


def _with_cache(block: Block, part: dict[str, Any]) -> Block:
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Content as a list of parts (a string is one text part; ``None`` is none)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise UnsupportedParameter(where, f"'{where}' must be a string or a list of content parts.")
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise UnsupportedParameter(f"{where}[{j}]", f"'{where}[{j}]' must be an object.")
    return content


def _text(part: dict[str, Any], key: str, where: str) -> str:
    text = part.get(key)
    if not isinstance(text, str):
        raise UnsupportedParameter(f"{where}.{key}", f"'{where}.{key}' must be a string.")
    return text


def _text_blocks(content: Any, where: str) -> list[Block]:
    out: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        if part.get("type") != "text":
            raise UnsupportedParameter(f"{where}[{j}].type", f"Only text parts are allowed in '{where}'.")
        text = _text(part, "text", f"{where}[{j}]")
        if text.strip():  # Anthropic rejects empty and whitespace-only text blocks
            out.append(_with_cache({"type": "text", "text": text}, part))
    return out


def _user_blocks(content: Any, where: str) -> list[Block]:
    out: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        at = f"{where}[{j}]"
        kind = part.get("type")
        if kind == "text":
            text = _text(part, "text", at)
            if text.strip():
                out.append(_with_cache({"type": "text", "text": text}, part))
        elif kind == "image_url":
            out.append(_with_cache(_image(part.get("image_url"), f"{at}.image_url"), part))
        elif kind == "file":
            out.append(_with_cache(_document(part.get("file"), f"{at}.file"), part))
        else:
            raise UnsupportedParameter(f"{at}.type", f"Content part type {kind!r} cannot be sent to Anthropic models.")
    return out


def _image(image: Any, where: str) -> Block:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise UnsupportedParameter(f"{where}.url", f"'{where}.url' must be a string.")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media, data = _data_url(url, where)
    if media not in IMAGE_TYPES:
        raise UnsupportedParameter(where, f"Image type {media!r} is not supported (jpeg, png, gif or webp).")
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


def _document(file: Any, where: str) -> Block:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str):
        raise UnsupportedParameter(where, "Only files sent inline as 'file_data' can be sent to Anthropic models.")
    media, data = _data_url(data_url, f"{where}.file_data")
    if media != "application/pdf":
        raise UnsupportedParameter(where, f"File type {media!r} is not supported (only application/pdf).")
    return {"type": "document", "source": {"type": "base64", "media_type": media, "data": data}}


def _data_url(url: str, where: str) -> tuple[str, str]:
    header, comma, data = url.partition(",")
    if not url.startswith("data:") or not comma or not header.endswith(";base64"):
        raise UnsupportedParameter(where, f"'{where}' must be an http(s) URL or a base64 data: URL.")
    return header[5:].split(";")[0].lower(), data


def _assistant_blocks(message: dict[str, Any], where: str) -> list[Block]:
    out: list[Block] = []
    for j, part in enumerate(_parts(message.get("content"), f"{where}.content")):
        at = f"{where}.content[{j}]"
        kind = part.get("type")
        if kind not in ("text", "refusal"):
            raise UnsupportedParameter(f"{at}.type", f"Assistant content part type {kind!r} is not supported.")
        text = _text(part, "text" if kind == "text" else "refusal", at)
        if text.strip():
            out.append(_with_cache({"type": "text", "text": text}, part))
    if message.get("function_call") is not None:
        raise UnsupportedParameter(f"{where}.function_call", "Legacy 'function_call' is not supported; use tool_calls.")
    calls = message.get("tool_calls")
    if calls is None:
        return out
    if not isinstance(calls, list):
        raise UnsupportedParameter(f"{where}.tool_calls", f"'{where}.tool_calls' must be a list.")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise UnsupportedParameter(at, f"'{at}' must be a function tool call.")
        call_id = _text(call, "id", at)
        name = _text(function, "name", f"{at}.function")
        out.append({"type": "tool_use", "id": call_id, "name": name, "input": _arguments(function.get("arguments"))})
    return out


def _arguments(raw: Any) -> dict[str, Any]:
    """Tool-call arguments as the object Anthropic wants; ``{"_raw": text}`` when they are not one."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return {"_raw": str(raw)}
    return value if isinstance(value, dict) else {"_raw": str(raw)}


def _tool_result(message: dict[str, Any], where: str) -> Block:
    block: Block = {"type": "tool_result", "tool_use_id": _text(message, "tool_call_id", where)}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        texts = _text_blocks(content, f"{where}.content")
        if texts:
            block["content"] = texts
    return block


def _tools(raw: Any) -> list[Block]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UnsupportedParameter("tools", "'tools' must be a list.")
    out: list[Block] = []
    for i, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise UnsupportedParameter(f"tools[{i}].type", "Only function tools can be sent to Anthropic models.")
        schema = function.get("parameters")
        if not isinstance(schema, dict) or not schema:
            schema = {"type": "object", "properties": {}}
        elif "type" not in schema:
            schema = {"type": "object", **schema}
        entry: Block = {"name": _text(function, "name", f"tools[{i}].function"), "input_schema": schema}
        if isinstance(function.get("description"), str):
            entry["description"] = function["description"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> Block | None:
    result: Block | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif choice in ("auto", "none"):
        result = {"type": choice}
    elif choice == "required":
        result = {"type": "any"}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        result = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise UnsupportedParameter(
            "tool_choice", "'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', ...}."
        )
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def _stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise UnsupportedParameter("stop", "'stop' must be a string or a list of strings.")
    return [s for s in items if s]


def _format_instruction(fmt: Any) -> str | None:
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return JSON_INSTRUCTION
    if kind != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return JSON_INSTRUCTION
    name = spec.get("name") if isinstance(spec, dict) else None
    named = f" (named {name!r})" if isinstance(name, str) and name else ""
    return f"{JSON_INSTRUCTION} The object must conform to this JSON Schema{named}:\n{orjson.dumps(schema).decode()}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- response -----------------------------------------------------------------------------------


def from_anthropic_response(resp: dict[str, Any], model_name: str, request_id: str, created: int) -> dict[str, Any]:
    """An Anthropic message as an OpenAI ``chat.completion``; :class:`UpstreamStreamError` if malformed."""
    if not isinstance(resp, dict):
        raise UpstreamStreamError("The upstream answer is not a JSON object.")
    if resp.get("type") == "error":
        error = resp.get("error")
        detail = error.get("message") if isinstance(error, dict) else error
        raise UpstreamStreamError(f"The upstream answered with an error: {detail}")
    content = resp.get("content")
    if not isinstance(content, list):
        raise UpstreamStreamError("The upstream answer has no 'content' list.")
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            raise UpstreamStreamError("The upstream answer has a content block that is not an object.")
        kind = block.get("type")
        if kind == "text":
            texts.append(_answer_text(block, "text"))
        elif kind == "thinking":
            reasoning.append(_answer_text(block, "thinking"))
        elif kind == "tool_use":
            tool_input = block.get("input")
            calls.append(
                {
                    "id": _answer_text(block, "id"),
                    "type": "function",
                    "function": {
                        "name": _answer_text(block, "name"),
                        "arguments": json_text(tool_input if tool_input is not None else {}),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    usage = resp.get("usage")
    return {
        "id": completion_id(request_id),
        "object": "chat.completion",
        "created": created,
        "model": model_name,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(resp.get("stop_reason"))}
        ],
        "usage": openai_usage(usage if isinstance(usage, dict) else {}),
    }


def _answer_text(block: dict[str, Any], key: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise UpstreamStreamError(f"The upstream answer has a {block.get('type')} block without a string {key!r}.")
    return value
