"""Pure OpenAI -> Anthropic translation (an Anthropic upstream), checked against the official SDKs' types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming, MessageCreateParamsStreaming
from openai.types.chat import ChatCompletion
from pydantic import TypeAdapter
from tests.support.sdk_types import materialise

from tokenomy.providers.anthropic import translate as t

REQUEST = TypeAdapter(MessageCreateParamsNonStreaming)
STREAM_REQUEST = TypeAdapter(MessageCreateParamsStreaming)
HI = [{"role": "user", "content": "hi"}]


def anthropic_request(body: dict[str, Any]) -> dict[str, Any]:
    """Translate, and check the result against the Anthropic SDK's request types."""
    out = t.to_anthropic_request(body, "claude-x")
    materialise((STREAM_REQUEST if out.get("stream") else REQUEST).validate_python(out))
    return out


# -- requests -------------------------------------------------------------------------------------


def test_minimal_text_request() -> None:
    out = anthropic_request({"model": "claude", "messages": HI})
    assert out == {
        "model": "claude-x",
        "max_tokens": t.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_request_maps_system_turns_tools_and_images() -> None:
    body: dict[str, Any] = {
        "model": "x",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA="}},
                ],
            },
            {"role": "user", "content": "second user turn merges"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": "END",
        "max_tokens": 99,
        "user": "u",
        "stream": True,
    }
    out = anthropic_request(body)
    assert out["model"] == "claude-x" and out["system"] == "be brief\n\nand kind" and out["max_tokens"] == 99
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    first = out["messages"][0]["content"]
    assert first[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA="}}
    assert first[2] == {"type": "text", "text": "second user turn merges"}
    assert out["messages"][1]["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "c1", "content": "42"}]
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object"}, "description": "d"}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["temperature"] == 1.0 and out["top_p"] == 0.9  # OpenAI's 0..2 clamped to Anthropic's 0..1
    assert out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "u"} and out["stream"] is True


def test_multi_turn_merges_and_orders_tool_results_first() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}},
                    {"id": "b", "type": "function", "function": {"name": "w", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "sunny"}]},
            {"role": "tool", "tool_call_id": "b", "content": ""},
            {"role": "user", "content": "and tomorrow?"},
            {"role": "assistant", "content": " \n"},  # blank turns are dropped (Anthropic rejects them)
            {"role": "assistant", "content": [{"type": "text", "text": "Tomorrow: rain."}]},
            {"role": "system", "content": "late system text is hoisted"},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [{"type": "function", "function": {"name": "w"}}],
    }
    out = anthropic_request(body)
    assert out["system"] == "late system text is hoisted"
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assistant = out["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Checking both."}
    assert assistant[2] == {"type": "tool_use", "id": "b", "name": "w", "input": {}}
    merged = out["messages"][2]["content"]
    assert [b["type"] for b in merged] == ["tool_result", "tool_result", "text"]
    assert merged[0]["content"] == [{"type": "text", "text": "sunny"}] and "content" not in merged[1]
    assert out["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


def test_images_files_and_cache_control() -> None:
    body = {
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "long prefix", "cache_control": {"type": "ephemeral"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "data:image/PNG;base64,iVBO"}},
                    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
                ],
            },
        ]
    }
    out = anthropic_request(body)
    assert out["system"] == [{"type": "text", "text": "long prefix", "cache_control": {"type": "ephemeral"}}]
    blocks = out["messages"][0]["content"]
    assert blocks[0] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBO"}
    assert blocks[2] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
    }


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", False, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (
            {"type": "function", "function": {"name": "f"}},
            False,
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    body: dict[str, Any] = {"messages": HI, "tools": [{"type": "function", "function": {"name": "f"}}]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert anthropic_request(body).get("tool_choice") == expected


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in anthropic_request({"messages": HI, "tool_choice": "none"})


@pytest.mark.parametrize(
    ("stop", "expected"), [("END", ["END"]), (["a", "b"], ["a", "b"]), ([], None), (None, None), (["", "x"], ["x"])]
)
def test_stop_sequences(stop: Any, expected: Any) -> None:
    assert anthropic_request({"messages": HI, "stop": stop}).get("stop_sequences") == expected


def test_max_tokens_precedence() -> None:
    assert anthropic_request({"messages": HI, "max_tokens": 5, "max_completion_tokens": 7})["max_tokens"] == 7
    with pytest.raises(t.UnsupportedParameter) as info:
        t.to_anthropic_request({"messages": HI, "max_tokens": 0}, "m")
    assert info.value.param == "max_tokens"


def test_json_modes_become_an_instruction() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
    out = anthropic_request({"messages": [{"role": "system", "content": "sys"}, *HI], "response_format": fmt})
    assert out["system"].startswith("sys\n\n") and "JSON" in out["system"] and '{"type":"object"}' in out["system"]
    plain = anthropic_request({"messages": HI, "response_format": {"type": "json_object"}})
    assert plain["system"] == t.JSON_INSTRUCTION
    assert "system" not in anthropic_request({"messages": HI, "response_format": {"type": "text"}})


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("seed", 1),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("logit_bias", {"1": 1}),
        ("modalities", ["text", "audio"]),
        ("functions", [{"name": "f"}]),
    ],
)
def test_unsupported_parameters_are_named(param: str, value: Any) -> None:
    with pytest.raises(t.UnsupportedParameter) as info:
        t.to_anthropic_request({"messages": HI, param: value}, "m")
    assert info.value.param == param and param in str(info.value)
    assert isinstance(info.value, ValueError)


def test_harmless_defaults_are_accepted() -> None:
    body = {
        "messages": HI,
        "n": 1,
        "logprobs": False,
        "frequency_penalty": 0,
        "presence_penalty": 0.0,
        "logit_bias": {},
        "modalities": ["text"],
    }
    assert anthropic_request(body)["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ("hi", "messages"),
        (["hi"], "messages[0]"),
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], "messages[0].content[0].type"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}]}],
            "messages[0].content[0].image_url",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}],
            "messages[0].content[0].image_url",
        ),
        (
            [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}],
            "messages[0].content[0].type",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}],
            "messages[0].tool_calls[0].id",
        ),
        ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id"),
    ],
)
def test_malformed_messages_name_the_field(messages: Any, param: str) -> None:
    with pytest.raises(t.UnsupportedParameter) as info:
        t.to_anthropic_request({"messages": messages}, "m")
    assert info.value.param == param


def test_malformed_tools_and_tool_choice() -> None:
    with pytest.raises(t.UnsupportedParameter) as info:
        t.to_anthropic_request({"messages": HI, "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "m")
    assert info.value.param == "tools[0].type"
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(t.UnsupportedParameter) as info:
        t.to_anthropic_request({"messages": HI, "tools": tools, "tool_choice": "sometimes"}, "m")
    assert info.value.param == "tool_choice"


def test_tool_arguments_that_are_not_an_object_are_kept_raw() -> None:
    calls = [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{broken"}},
        {"id": "d", "type": "function", "function": {"name": "f", "arguments": "[1]"}},
    ]
    out = anthropic_request({"messages": [*HI, {"role": "assistant", "tool_calls": calls}]})
    inputs = [b["input"] for b in out["messages"][1]["content"]]
    assert inputs == [{"_raw": "{broken"}, {"_raw": "[1]"}]


# -- whole responses -------------------------------------------------------------------------------


def _message(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def test_text_response() -> None:
    raw = t.from_anthropic_response(
        _message([{"type": "text", "text": "Hello"}, {"type": "text", "text": "!"}]), "claude", "req_1", 123
    )
    out = ChatCompletion.model_validate(raw)
    assert out.id == "chatcmpl-req_1" and out.created == 123 and out.model == "claude"
    assert out.choices[0].message.content == "Hello!" and out.choices[0].message.tool_calls is None
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (10, 5)
    assert out.usage.total_tokens == 15


def test_tool_use_response_and_cache_usage() -> None:
    message = _message(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "let me check"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x", "é": 1}},
        ],
        stop="tool_use",
        cache_read_input_tokens=4,
        cache_creation_input_tokens=6,
    )
    raw = t.from_anthropic_response(message, "claude", "req", 1)
    out = ChatCompletion.model_validate(raw)
    assert out.choices[0].finish_reason == "tool_calls"
    call = out.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.id == "toolu_1" and call.function.name == "f"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"q": "x", "é": 1}  # type: ignore[union-attr]
    assert raw["choices"][0]["message"]["reasoning_content"] == "hmm"
    assert out.usage is not None and out.usage.prompt_tokens == 20 and out.usage.total_tokens == 25
    assert out.usage.prompt_tokens_details is not None and out.usage.prompt_tokens_details.cached_tokens == 4
    assert out.usage.prompt_tokens_details.cache_write_tokens == 6


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(stop: str, finish: str) -> None:
    raw = t.from_anthropic_response(_message([{"type": "text", "text": "x"}], stop=stop), "m", "r", 1)
    assert ChatCompletion.model_validate(raw).choices[0].finish_reason == finish


@pytest.mark.parametrize(
    "resp",
    [
        [],
        {"type": "error", "error": {"type": "api_error", "message": "boom"}},
        {"content": "text"},
        {"content": ["text"]},
        {"content": [{"type": "tool_use", "name": "f", "input": {}}]},
        {"content": [{"type": "text", "text": None}]},
        {"content": [], "usage": {"input_tokens": "many"}},
    ],
)
def test_malformed_responses(resp: Any) -> None:
    with pytest.raises(t.UpstreamStreamError):
        t.from_anthropic_response(resp, "m", "r", 1)
