"""Lossless: JSON text carried inside string fields, re-serialized without insignificant whitespace.

Tool and function schemas travel as JSON objects, which the gateway already serializes compactly
upstream; what is left is JSON *text* inside strings: tool results, text parts that are a JSON
document, tool-call ``arguments`` and structured-output schemas' descriptions do not change. A
string is rewritten only when it parses as a JSON object or array and the compact form parses to
the same value; anything else (plain text, scalars, NaN, invalid JSON) is left as it is.
"""

from __future__ import annotations

import json
from typing import Any

from tokenomy.optimize.messages import map_texts

name = "minify_json"


def minify(text: str) -> str:
    """``text`` without insignificant whitespace when it is one JSON object or array, else unchanged."""
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in "[{" or stripped[-1] not in "]}":
        return text
    try:  # the standard library keeps big integers and float digits exactly (orjson would not)
        value = json.loads(stripped, parse_constant=_reject)
        compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return text
    if len(compact) >= len(text) or json.loads(compact) != value:
        return text
    return compact


def _reject(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def apply(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body with JSON text minified (contents and tool-call arguments), or ``None`` if unchanged."""
    messages = body.get("messages")
    changed = False
    out: list[Any] = []
    for message in messages if isinstance(messages, list) else ():
        new = map_texts(message, minify)
        calls = new.get("tool_calls") if isinstance(new, dict) else None
        if isinstance(calls, list):
            fixed = [_minify_call(call) for call in calls]
            if any(a is not b for a, b in zip(fixed, calls, strict=True)):
                new = {**new, "tool_calls": fixed}
        changed = changed or new is not message
        out.append(new)
    return {**body, "messages": out} if changed else None


def _minify_call(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    arguments = function["arguments"]
    compact = minify(arguments)
    if compact == arguments:
        return call
    return {**call, "function": {**function, "arguments": compact}}
