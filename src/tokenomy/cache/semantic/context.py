"""The conversation context of a chat request: everything but the last user turn, as a fingerprint.

A semantic hit is only ever accepted between requests with the *same* fingerprint, so a follow-up
such as "and its population?" can only match the same follow-up in the same conversation. The
fingerprint is a BLAKE2b hash of:

- the namespace (tenant, or a declared shared namespace) and the logical model;
- every body field the exact key covers except ``messages`` (sampling parameters, tools,
  ``response_format``, unknown fields: anything that may change the answer);
- every message before the last one, whole (system prompts, earlier turns, tool results);
- the last message's fields other than its text (e.g. ``name``).

Not applicable (``None``) when the last message is not a plain user turn (an assistant
prefill), when any message holds anything but text (images, audio, files) or is a tool call or
tool result, when the last text is empty, or longer than :data:`MAX_TEXT_CHARS` (the embedding
reads only the first 256 tokens, so two long prompts that differ further on would look identical).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tokenomy.cache.key import IGNORED_FIELDS

MAX_TEXT_CHARS = 1000
"""Longer last turns are left to the exact tier."""


def _text(content: Any) -> str | None:
    """The text of a message's content: a string, or a list of text parts only."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                return None
            parts.append(part["text"])
        return "\n".join(parts)
    return None


def conversation_context(namespace: str, model: str, body: dict[str, Any]) -> tuple[str, str] | None:
    """``(context fingerprint, last user text)`` for a chat body, or ``None`` when not applicable."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    for message in messages:  # images, audio, files, tool calls and results: exact tier only
        if not isinstance(message, dict) or message.get("role") in ("tool", "function"):
            return None
        if message.get("tool_calls") or message.get("function_call"):
            return None
        content = message.get("content")
        if content is not None and _text(content) is None:
            return None
    text = _text(last.get("content"))
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_TEXT_CHARS:
        return None
    params = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and k != "messages"}
    last_rest = {k: v for k, v in last.items() if k != "content"}
    try:
        payload = orjson.dumps(
            ["chat", namespace, model, params, messages[:-1], last_rest],
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        )
    except TypeError:  # not JSON: leave it to the exact tier
        return None
    return hashlib.blake2b(payload, digest_size=16).hexdigest(), text
