"""Lossless: a system (or developer) message identical to an earlier one is dropped.

Clients that assemble prompts from parts sometimes repeat the same instructions; the model reads
nothing new the second time. Only exact repeats (same role, same content) go.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenomy.optimize.messages import SYSTEM_ROLES, role

name = "dedupe_system"


def apply(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body without repeated identical system messages, or ``None`` if there were none."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    seen: set[bytes] = set()
    out: list[Any] = []
    for message in messages:
        if role(message) in SYSTEM_ROLES:
            key = orjson.dumps([message.get("role"), message.get("content"), message.get("name")])
            if key in seen:
                continue
            seen.add(key)
        out.append(message)
    return {**body, "messages": out} if len(out) < len(messages) else None
