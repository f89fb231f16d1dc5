"""Every field of both request schemas, as the official SDKs declare them, and what becomes of it per direction.

- Messages API request -> chat completions (an Anthropic SDK caller on a non-Anthropic model).
- Chat completions request -> Messages API (an OpenAI SDK caller on an Anthropic model).

Each field is ``translated`` (it changes the request sent), ``not needed`` (accepted, nothing to
send) or ``refused`` (a 400 naming it). A field the SDK gains later fails the completeness check
until someone decides its fate.
"""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
from anthropic.types import message_create_params as amc
from openai.types.chat import completion_create_params as occ

from tokenomy.providers.anthropic import translate
from tokenomy.providers.anthropic.chat_fields import CHAT_FIELDS
from tokenomy.server import anthropic_wire as w


def _fields(*typed_dicts: Any) -> set[str]:
    return {name for td in typed_dicts for name in get_type_hints(td, include_extras=False)}


MESSAGES_SAMPLES: dict[str, Any] = {
    "model": "other", "max_tokens": 7, "messages": [{"role": "user", "content": "bye"}], "system": "sys",
    "stop_sequences": ["X"], "stream": True, "temperature": 0.5, "top_p": 0.5,
    "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "u"}, "output_config": {"effort": "high"},
    "thinking": {"type": "enabled", "budget_tokens": 2048}, "cache_control": {"type": "ephemeral"},
    "service_tier": "standard_only", "top_k": 3, "container": "c", "diagnostics": {"x": 1}, "inference_geo": "us",
    "speed": "fast", "user_profile_id": "p", "workspace_id": "w", "mcp_servers": [{"type": "url"}],
    "context_management": {"edits": []},
}  # fmt: skip


def test_every_messages_field_has_a_fate() -> None:
    declared = _fields(amc.MessageCreateParamsNonStreaming, amc.MessageCreateParamsStreaming)
    missing = declared - set(w.MESSAGES_FIELDS)
    assert not missing, f"Messages API fields without a fate: {sorted(missing)}"
    # fields of the API this SDK version does not declare (sampling ones, beta ones)
    assert set(w.MESSAGES_FIELDS) - declared <= {"temperature", "top_p", "top_k", "mcp_servers", "context_management"}


@pytest.mark.parametrize("field", sorted(w.MESSAGES_FIELDS))
def test_messages_field_fate(field: str) -> None:
    base: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    if field == "tool_choice":  # chat refuses a tool choice without tools
        base["tools"] = [{"name": "g", "input_schema": {"type": "object"}}]
    plain = w.messages_request_to_openai(base, [])
    body = {**base, field: MESSAGES_SAMPLES[field]}
    problems: list[tuple[str, str]] = []
    out = w.messages_request_to_openai(body, problems)
    problems += w.untranslated(body)
    fate = w.MESSAGES_FIELDS[field]
    if fate == "refused":
        assert [p for p, _ in problems] == [field]
    else:
        assert not problems
        assert (out != plain) is (fate == "translated"), (field, out)


def test_unknown_messages_field_is_a_problem() -> None:
    assert [p for p, _ in w.untranslated({"model": "m", "brand_new": 1})] == ["brand_new"]


CHAT_SAMPLES: dict[str, Any] = {
    "messages": [{"role": "user", "content": "bye"}], "model": "other", "max_completion_tokens": 9000,
    "max_tokens": 9000, "temperature": 0.5, "top_p": 0.5, "stop": ["X"], "stream": True,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "required", "parallel_tool_calls": False, "response_format": {"type": "json_object"},
    "user": "u", "safety_identifier": "s", "reasoning_effort": "low", "stream_options": {"include_usage": True},
    "metadata": {"task": "t"}, "prompt_cache_key": "k", "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit"}, "service_tier": "auto", "store": False, "n": 2, "logprobs": True,
    "top_logprobs": 2, "seed": 1, "frequency_penalty": 0.5, "presence_penalty": 0.5, "logit_bias": {"1": 1},
    "audio": {"voice": "alloy", "format": "mp3"}, "modalities": ["text", "audio"],
    "functions": [{"name": "f"}], "function_call": "auto", "prediction": {"type": "content", "content": "x"},
    "verbosity": "low", "web_search_options": {}, "moderation": {"model": "m"},
}  # fmt: skip


def test_every_chat_field_has_a_fate() -> None:
    declared = _fields(occ.CompletionCreateParamsNonStreaming, occ.CompletionCreateParamsStreaming)
    missing = declared - set(CHAT_FIELDS)
    assert not missing, f"chat fields without a fate: {sorted(missing)}"
    assert set(CHAT_FIELDS) <= declared


@pytest.mark.parametrize("field", sorted(CHAT_FIELDS))
def test_chat_field_fate(field: str) -> None:
    base: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if field in ("tool_choice", "parallel_tool_calls"):  # they shape the tool choice: only with tools
        base["tools"] = [{"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}]
    plain = translate.to_anthropic_request(base, "claude")
    fate = CHAT_FIELDS[field]
    if fate == "refused":
        with pytest.raises(translate.UnsupportedParameter) as info:
            translate.to_anthropic_request({**base, field: CHAT_SAMPLES[field]}, "claude")
        assert info.value.param == field
        return
    out = translate.to_anthropic_request({**base, field: CHAT_SAMPLES[field]}, "claude")
    if field == "model":  # becomes the deployment's own model id
        assert out["model"] == "claude"
        return
    assert (out != plain) is (fate == "translated"), (field, out)


@pytest.mark.parametrize(("field", "value"), [("store", True), ("service_tier", "priority"), ("brand_new", 1)])
def test_chat_values_that_ask_for_something_are_refused(field: str, value: Any) -> None:
    with pytest.raises(translate.UnsupportedParameter) as info:
        translate.to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": "x"}], field: value}, "")
    assert info.value.param == field
