"""Provider prompt caching: Anthropic ``cache_control`` breakpoints where the prefix is stable.

Anthropic caches a prompt prefix only up to a block marked ``cache_control``; a later request
with the same prefix reads it at a tenth of the input price (writing it costs more than plain
input, so marking a prefix that never repeats costs money). :func:`place_breakpoints` is a pure
function over an Anthropic Messages request (whether translated from the OpenAI format or sent
natively) and places at most two breakpoints:

1. at the end of the static prefix (the system prompt, or the last tool without one) when tools
   and system together reach ``min_tokens``;
2. at the last block before the final user message (the conversation so far), when the prompt
   up to there reaches ``min_tokens``.

A request that already carries ``cache_control`` anywhere is left as the client made it. In
``auto`` mode (:class:`PrefixMemory`), breakpoint 1 is placed only once its prefix has been seen
before, and breakpoint 2 only when the request continues a conversation seen before, so one-off
prompts never pay for a cache write.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

EPHEMERAL = {"type": "ephemeral"}
TTL_S = 300.0  # Anthropic's default cache lifetime
_NO_CACHE_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def has_cache_control(body: dict[str, Any]) -> bool:
    """Whether the client marked any breakpoint itself."""
    return b'"cache_control"' in orjson.dumps([body.get("tools"), body.get("system"), body.get("messages")])


def place_breakpoints(
    body: dict[str, Any],
    min_tokens: int,
    count: Callable[[str], int],
    *,
    static: bool = True,
    conversation: bool = True,
) -> tuple[dict[str, Any], int]:
    """The request with breakpoints placed (see the module docstring) and how many were placed."""
    if has_cache_control(body):
        return body, 0
    out = dict(body)
    placed = 0
    tools, system, messages = body.get("tools"), body.get("system"), body.get("messages")
    running = count(orjson.dumps(tools).decode()) if isinstance(tools, list) and tools else 0
    running += count(_system_text(system))
    if static and running >= min_tokens:
        if system:
            out["system"] = _marked_system(system)
            placed += 1
        elif isinstance(tools, list) and tools and isinstance(tools[-1], dict):
            out["tools"] = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
            placed += 1
    if conversation and isinstance(messages, list) and len(messages) >= 3:
        last_user = max((i for i, m in enumerate(messages) if _role(m) == "user"), default=0)
        if last_user > 0:
            running += sum(
                count(orjson.dumps(m.get("content")).decode()) for m in messages[:last_user] if isinstance(m, dict)
            )
            if running >= min_tokens:
                marked = _marked_message(messages[last_user - 1])
                if marked is not None:
                    out["messages"] = [*messages[: last_user - 1], marked, *messages[last_user:]]
                    placed += 1
    return (out, placed) if placed else (body, 0)


def _role(message: Any) -> str:
    return str(message.get("role", "")) if isinstance(message, dict) else ""


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    return ""


def _marked_system(system: Any) -> Any:
    if isinstance(system, str):
        return [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
    if isinstance(system, list) and system and isinstance(system[-1], dict):
        return [*system[:-1], {**system[-1], "cache_control": EPHEMERAL}]
    return system


def _marked_message(message: Any) -> dict[str, Any] | None:
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return (
            {**message, "content": [{"type": "text", "text": content, "cache_control": EPHEMERAL}]} if content else None
        )
    if isinstance(content, list):
        for i in range(len(content) - 1, -1, -1):
            block = content[i]
            if isinstance(block, dict) and block.get("type") not in _NO_CACHE_BLOCKS:
                return {**message, "content": [*content[:i], {**block, "cache_control": EPHEMERAL}, *content[i + 1 :]]}
    return None


@dataclass(slots=True)
class PrefixMemory:
    """Prefixes (hashed) seen in the last few minutes, to tell a stable prefix from a one-off."""

    ttl_s: float = TTL_S
    capacity: int = 65_536
    _seen: OrderedDict[bytes, float] = field(default_factory=OrderedDict)

    def check_and_add(self, key: bytes) -> bool:
        """Whether ``key`` was seen within the TTL; records it as seen now either way."""
        now = time.monotonic()
        last = self._seen.pop(key, None)
        self._seen[key] = now
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return last is not None and now - last <= self.ttl_s

    def add(self, key: bytes) -> None:
        """Record ``key`` as seen now."""
        self.check_and_add(key)


def _digest(*parts: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(parts), digest_size=16).digest()


@dataclass(slots=True)
class PromptCachePlan:
    """What the optimize stage decided for one request; the Anthropic provider calls :meth:`apply`."""

    mode: str  # auto | always
    min_tokens: int
    count: Callable[[str], int]
    memory: PrefixMemory | None = None
    placed: int = 0

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` (an Anthropic request) with breakpoints placed; remembers prefixes in ``auto`` mode."""
        static = conversation = True
        if self.mode == "auto" and self.memory is not None:
            model, tools, system, messages = (
                body.get("model"),
                body.get("tools"),
                body.get("system"),
                body.get("messages"),
            )
            static = self.memory.check_and_add(_digest(model, tools, system))
            if isinstance(messages, list):
                conversation = len(messages) >= 3 and self.memory.check_and_add(
                    _digest(model, tools, system, messages[:-2])
                )
                self.memory.add(_digest(model, tools, system, messages))
        out, self.placed = place_breakpoints(
            body, self.min_tokens, self.count, static=static, conversation=conversation
        )
        return out
