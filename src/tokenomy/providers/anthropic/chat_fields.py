"""The fate of every chat-completions request field on its way to the Anthropic Messages API.

Each field is ``translated`` (it becomes something Anthropic honours), ``not needed`` (nothing
on Anthropic's side could change because of it: the gateway uses it, or Anthropic does the same
by default), or ``refused`` (a 400 naming it). Refused fields are refused only when they ask for
something (``n: 1``, ``logprobs: false``, ``store: false`` are fine). Unknown fields are refused:
nothing a client sends is dropped silently.
"""

from __future__ import annotations

from typing import Any

from tokenomy.providers import chat_request

CHAT_FIELDS: dict[str, str] = {
    "messages": "translated", "model": "translated", "max_completion_tokens": "translated",
    "max_tokens": "translated", "temperature": "translated", "top_p": "translated", "stop": "translated",
    "stream": "translated", "tools": "translated", "tool_choice": "translated", "parallel_tool_calls": "translated",
    "response_format": "translated", "user": "translated", "safety_identifier": "translated",
    "reasoning_effort": "translated",  # -> thinking with a token budget
    "stream_options": "not needed",  # usage is always reported
    "metadata": "not needed",  # the gateway's own tags (task); Anthropic's metadata holds only a user id
    "prompt_cache_key": "not needed", "prompt_cache_retention": "not needed",
    "prompt_cache_options": "not needed",  # Anthropic caches by cache_control on content parts
    "service_tier": "not needed",  # auto/default; other tiers are refused
    "store": "not needed",  # false; storing completions (true) is refused
    "n": "refused", "logprobs": "refused", "top_logprobs": "refused", "seed": "refused",
    "frequency_penalty": "refused", "presence_penalty": "refused", "logit_bias": "refused", "audio": "refused",
    "modalities": "refused", "functions": "refused", "function_call": "refused", "prediction": "refused",
    "verbosity": "refused", "web_search_options": "refused", "moderation": "refused",
}  # fmt: skip

#: Values of refused fields that ask for nothing.
_HARMLESS: dict[str, tuple[Any, ...]] = {
    "n": (1,), "logprobs": (False,), "top_logprobs": (0,), "frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0),
    "logit_bias": ({},), "modalities": (["text"],), "store": (False,), "service_tier": ("auto", "default"),
}  # fmt: skip


def refused_field(body: dict[str, Any]) -> tuple[str, str] | None:
    """The first field Anthropic cannot honour, as ``(param, reason)``; ``None`` when all can be."""
    return chat_request.refused_field(body, CHAT_FIELDS, _HARMLESS, "The Anthropic Messages API")
