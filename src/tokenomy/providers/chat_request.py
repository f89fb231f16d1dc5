"""Reading an OpenAI chat request, as every translating provider needs to (pure, no I/O)."""

from __future__ import annotations

import json
from typing import Any

Fates = dict[str, str]  # field -> "translated" | "not needed" | "refused"


def refused_field(
    body: dict[str, Any], fates: Fates, harmless: dict[str, tuple[Any, ...]], target: str
) -> tuple[str, str] | None:
    """The first field ``target`` cannot honour, as ``(param, reason)``; ``None`` when all can be.

    Refused fields, and ``not needed`` ones listed in ``harmless``, pass only with a harmless value
    (``n: 1``, ``store: false``...); unknown fields never pass.
    """
    for key, value in body.items():
        if value is None or value in harmless.get(key, ()):
            continue
        fate = fates.get(key)
        if fate == "translated" or (fate == "not needed" and key not in harmless):
            continue
        if fate is None:
            return key, f"The parameter '{key}' is not known to this gateway and cannot be sent to {target}."
        return key, f"{target} has no counterpart for '{key}' = {value!r}."
    return None


def text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def arguments_object(arguments: Any) -> dict[str, Any]:
    """Tool-call ``arguments`` as an object (``{"_raw": text}`` when they are not a JSON object)."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {"_raw": str(arguments)}
    return value if isinstance(value, dict) else {"_raw": str(arguments)}


def append_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[dict[str, Any]]) -> None:
    """Add ``items`` to the last turn when it has ``role`` (protocols that want roles to alternate)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})
