"""Reading and rewriting the text of OpenAI chat messages without touching anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def map_texts(message: Any, fn: Callable[[str], str]) -> Any:
    """``message`` with ``fn`` applied to its string content or text parts; the same object if unchanged."""
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        new = fn(content)
        return message if new == content else {**message, "content": new}
    if not isinstance(content, list):
        return message
    parts: list[Any] = []
    changed = False
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            new = fn(part["text"])
            if new != part["text"]:
                part = {**part, "text": new}
                changed = True
        parts.append(part)
    return {**message, "content": parts} if changed else message


def text_of(message: Any) -> str:
    """The text of a message: its string content or its text parts joined by blank lines."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def role(message: Any) -> str:
    """The message's role, or an empty string."""
    value = message.get("role") if isinstance(message, dict) else None
    return value if isinstance(value, str) else ""


SYSTEM_ROLES = frozenset({"system", "developer"})
