"""Why an answer stopped, read from any answer shape the gateway passes on (pure, no I/O).

The ledger keeps OpenAI's words (``stop``, ``length``, ``tool_calls``, ``content_filter``) whatever
the wire: Chat Completions and legacy completions carry ``finish_reason`` per choice, an Anthropic
Messages answer its ``stop_reason``, a Responses API answer its ``status`` and ``incomplete_details``.
With several choices, one cut short at the limit makes the answer ``length`` (the report counts
truncated answers); otherwise the first choice's reason stands.
"""

from __future__ import annotations

from typing import Any

from tokenomy.providers.anthropic.translate_stream import FINISH_REASONS

LENGTH = "length"
"""The reason of an answer cut short at the output limit."""

_MAX_CHARS = 32  # an upstream's unknown word is stored, but never an arbitrary amount of it


def merge(previous: str | None, reason: str | None) -> str | None:
    """Combine reasons seen so far: ``length`` sticks, else the first one seen stands."""
    if reason is None or previous == LENGTH:
        return previous
    return reason if previous is None or reason == LENGTH else previous


def of_choices(choices: Any) -> str | None:
    """The reason among OpenAI ``choices`` (whole answer or stream chunk); ``None`` when none is set."""
    found: str | None = None
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and reason:
                    found = merge(found, reason[:_MAX_CHARS])
    return found


def of_body(body: dict[str, Any]) -> str | None:
    """The reason of a whole answer in the OpenAI, Anthropic Messages or Responses API shape."""
    if "choices" in body:
        return of_choices(body.get("choices"))
    if body.get("type") == "message":
        return _anthropic(body.get("stop_reason"))
    if body.get("object") == "response":
        return _responses(body)
    return None


def of_event(event: dict[str, Any]) -> str | None:
    """The reason carried by one streamed chunk or native event (``None`` for most of them)."""
    kind = event.get("type")
    if kind is None:
        return of_choices(event.get("choices"))
    if kind == "message_delta":
        delta = event.get("delta")
        return _anthropic(delta.get("stop_reason")) if isinstance(delta, dict) else None
    if kind in ("response.completed", "response.incomplete"):
        response = event.get("response")
        return _responses(response) if isinstance(response, dict) else None
    return None


def _anthropic(stop_reason: Any) -> str | None:
    if not isinstance(stop_reason, str) or not stop_reason:
        return None
    return FINISH_REASONS.get(stop_reason, stop_reason[:_MAX_CHARS])


def _responses(response: dict[str, Any]) -> str | None:
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return LENGTH if reason == "max_output_tokens" else "content_filter" if reason == "content_filter" else None
    if status == "completed":
        output = response.get("output")
        calls = isinstance(output, list) and any(
            isinstance(item, dict) and item.get("type") == "function_call" for item in output
        )
        return "tool_calls" if calls else "stop"
    return None
