"""Pure OpenAI <-> Anthropic translation, validated against the official SDKs' types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tokenomy.providers.anthropic import translate as t


def test_request_maps_system_turns_tools_and_images() -> None:
    body: dict[str, Any] = {
        "model": "x",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "and kind"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA="}}]},
            {"role": "user", "content": "second user turn merges"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": "required", "parallel_tool_calls": False,
        "temperature": 1.7, "stop": "END", "max_tokens": 99, "user": "u", "stream": True,
    }
    out = t.to_anthropic_request(body, "claude-x")
    assert out["model"] == "claude-x" and out["system"] == "be brief\n\nand kind" and out["max_tokens"] == 99
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    first = out["messages"][0]["content"]
    assert first[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA="}}
    assert first[2] == {"type": "text", "text": "second user turn merges"}
    assert out["messages"][1]["content"][0] == {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}
    assert out["messages"][2]["content"][0]["type"] == "tool_result"
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object"}, "description": "d"}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["temperature"] == 1.0 and out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "u"}


def test_json_mode_becomes_an_instruction() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
    out = t.to_anthropic_request({"messages": [{"role": "user", "content": "hi"}], "response_format": fmt}, "m")
    assert "JSON" in out["system"] and '{"type":"object"}' in out["system"]
    assert out["max_tokens"] == t.DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(("param", "value"), [("n", 2), ("logprobs", True), ("seed", 1), ("logit_bias", {"1": 1})])
def test_unsupported_parameters_are_named(param: str, value: Any) -> None:
    with pytest.raises(t.UnsupportedParameter) as info:
        t.to_anthropic_request({"messages": [{"role": "user", "content": "hi"}], param: value}, "m")
    assert info.value.param == param


def test_response_to_openai() -> None:
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": "let me check"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x"}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
    }
    out = ChatCompletion.model_validate(t.from_anthropic_response(message, "claude", "req", 1))
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.tool_calls[0].function.arguments == '{"q": "x"}'  # type: ignore[index,union-attr]
    assert out.usage is not None and out.usage.prompt_tokens == 14 and out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 4
    with pytest.raises(t.UpstreamStreamError):
        t.from_anthropic_response({"type": "error", "error": {}}, "m", "r", 1)


EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 7,
                                                                                       "output_tokens": 1}}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
    ("content_block_stop", {"index": 0}),
    ("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f",
                                                           "input": {}}}),
    ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"q": '}}),
    ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '"x"}'}}),
    ("content_block_stop", {"index": 1}),
    ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
    ("message_stop", {"type": "message_stop"}),
]


def test_stream_translation() -> None:
    tr = t.AnthropicStreamTranslator("claude", "req", 1, include_usage=True)
    chunks = [ChatCompletionChunk.model_validate(c) for e, d in EVENTS for c in tr.feed(e, d)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []
                   if tc.function)
    assert text == "Hi" and json.loads(args) == {"q": "x"}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 7
    assert chunks[-1].usage.completion_tokens == 12


def test_stream_errors_and_malformed_events() -> None:
    tr = t.AnthropicStreamTranslator("m", "r", 1, include_usage=False)
    with pytest.raises(t.UpstreamStreamError, match="Overloaded"):
        tr.feed("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(t.UpstreamStreamError):
        tr.feed("content_block_delta", {"delta": {}})
    assert tr.feed("some_future_event", {}) == []
