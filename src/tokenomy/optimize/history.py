"""History trimming: a long conversation is cut to a prompt-token budget.

Kept always: every system (or developer) message and the last ``keep_last`` messages, widened to
whole turns. A turn is a user message and everything up to the next one (assistant replies, tool
calls and their results), so a tool call is never separated from its result. The middle turns go,
oldest first, until the prompt fits. Requests that cannot be trimmed safely pass unchanged with a
warning: a tool result whose call is not in the conversation, or a budget smaller than what must
be kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokenomy.optimize.messages import SYSTEM_ROLES, role

name = "history"


@dataclass(frozen=True, slots=True)
class Trimmed:
    """The outcome: a new body (``None``: unchanged), messages dropped and a warning, if any."""

    body: dict[str, Any] | None
    dropped: int = 0
    warning: str | None = None
    removed: tuple[Any, ...] = ()  # the dropped messages, in order
    at: int = 0  # where they were in the kept messages (a summary goes there)


def apply(body: dict[str, Any], budget: int, keep_last: int, count: Callable[[list[Any]], list[int]]) -> Trimmed:
    """Drop the oldest middle turns until the messages fit ``budget`` tokens (``count`` gives per-message tokens)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) <= keep_last:
        return Trimmed(None)
    orphan = _orphan_tool_result(messages)
    if orphan is not None:
        return Trimmed(None, warning=f"history not trimmed: messages.{orphan} is a tool result without its call")
    sizes = count(messages)
    total = sum(sizes)
    if total <= budget:
        return Trimmed(None)
    turns = _turns(messages)
    tail_start = _tail_start(turns, len(messages) - keep_last)
    must = sum(s for i, s in enumerate(sizes) if role(messages[i]) in SYSTEM_ROLES or i >= tail_start)
    if must > budget:
        return Trimmed(
            None,
            warning=f"history not trimmed: the system prompt and the last {keep_last} messages alone take "
            f"{must} tokens, over the budget of {budget}",
        )
    dropped: set[int] = set()
    for start, end in turns:
        if start >= tail_start or total <= budget:
            break
        removable = [i for i in range(start, end) if role(messages[i]) not in SYSTEM_ROLES]
        dropped.update(removable)
        total -= sum(sizes[i] for i in removable)
    kept = [m for i, m in enumerate(messages) if i not in dropped]
    removed = tuple(messages[i] for i in sorted(dropped))
    at = min(dropped) if dropped else 0  # nothing before the first dropped message goes
    return Trimmed({**body, "messages": kept}, len(dropped), removed=removed, at=at)


def _turns(messages: list[Any]) -> list[tuple[int, int]]:
    """``(start, end)`` of each turn: from a user message to the next (the first turn may lack one).

    A user message made only of Anthropic ``tool_result`` blocks continues its turn: it answers
    the assistant's ``tool_use`` just before it.
    """
    starts = [i for i, m in enumerate(messages) if role(m) == "user" and not _results(m)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return [(s, e) for s, e in zip(starts, [*starts[1:], len(messages)], strict=True)]


def _tail_start(turns: list[tuple[int, int]], index: int) -> int:
    """The start of the turn holding message ``index`` (the tail never begins mid-turn)."""
    for start, end in turns:
        if start <= index < end:
            return start
    return max(index, 0)


def _blocks(message: Any, kind: str) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] if isinstance(content, list) else []


def _results(message: Any) -> bool:
    """Whether a message holds only Anthropic ``tool_result`` blocks."""
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and bool(content) and len(_blocks(message, "tool_result")) == len(content)


def _orphan_tool_result(messages: list[Any]) -> int | None:
    """The index of the first tool result (OpenAI ``tool`` message or Anthropic ``tool_result`` block)
    whose call no earlier assistant message issued."""
    issued: set[str] = set()
    for i, message in enumerate(messages):
        if role(message) == "assistant":
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    issued.add(call["id"])
            issued.update(str(b.get("id")) for b in _blocks(message, "tool_use"))
        else:
            pending = [str(b.get("tool_use_id")) for b in _blocks(message, "tool_result")]
            if role(message) == "tool":
                pending.append(str(message.get("tool_call_id")))
            if any(call not in issued for call in pending):
                return i
    return None
