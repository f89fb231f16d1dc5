"""Pure translation of the inbound Messages API, checked against the official SDKs' types."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from pydantic import TypeAdapter
from tests.support.sdk_types import materialise

from tokenomy.providers.anthropic import translate
from tokenomy.server import anthropic_wire as w
from tokenomy.server import schemas

EVENT: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
REQUEST = TypeAdapter(CompletionCreateParamsNonStreaming)
STREAM_REQUEST = TypeAdapter(CompletionCreateParamsStreaming)
HI = [{"role": "user", "content": "hi"}]


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """Translate; check the result with the openai SDK's request types and the gateway's own schema."""
    out = w.messages_request_to_openai(body)
    materialise((STREAM_REQUEST if out.get("stream") else REQUEST).validate_python(out))
    schemas.validate(out, schemas.ChatCompletionRequest)
    return out


# -- requests -------------------------------------------------------------------------------------


def test_request_to_openai() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "system": [{"type": "text", "text": "sys"}, {"type": "text", "text": "more"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi "},
                    {"type": "image", "source": {"type": "url", "url": "http://x/i.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "stop_sequences": ["X"],
        "metadata": {"user_id": "u"},
        "stream": True,
        "top_k": 5,
        "temperature": 0.3,
        "top_p": 0.8,
        "thinking": {"type": "disabled"},
    }
    out = to_openai(body)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert out["messages"][0] == {"role": "system", "content": "sys\n\nmore"}
    assert out["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "http://x/i.png"}}
    assert out["messages"][2]["content"] == "calling"
    assert out["messages"][2]["tool_calls"][0] == {
        "id": "t1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a": 1}'},
    }
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "42"}
    assert out["messages"][4] == {"role": "user", "content": "thanks"}
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "description": "d"}}
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["parallel_tool_calls"] is False and out["stop"] == ["X"] and out["user"] == "u"
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["temperature"] == 0.3 and out["top_p"] == 0.8 and out["max_tokens"] == 10
    assert not {"top_k", "thinking", "system", "metadata", "stop_sequences"} & out.keys()


def test_plain_strings_and_no_optional_fields() -> None:
    out = to_openai(
        {
            "model": "m",
            "max_tokens": 3,
            "system": "be brief",
            "messages": [*HI, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}],
        }
    )
    assert out == {
        "model": "m",
        "max_tokens": 3,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
        ],
    }


def test_tool_results_errors_images_and_documents() -> None:
    out = to_openai(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "a", "name": "f", "input": {}},
                        {"type": "tool_use", "id": "b", "name": "f", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "a", "is_error": True, "content": "timeout"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "b",
                            "content": [
                                {"type": "text", "text": "chart:"},
                                {
                                    "type": "image",
                                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                                },
                            ],
                        },
                        {
                            "type": "document",
                            "title": "spec",
                            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                        },
                        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
                    ],
                },
            ],
        }
    )
    assistant, first, second, user = out["messages"]
    assert assistant["content"] is None and [c["id"] for c in assistant["tool_calls"]] == ["a", "b"]
    assert first == {"role": "tool", "tool_call_id": "a", "content": "Error: timeout"}
    assert second == {"role": "tool", "tool_call_id": "b", "content": "chart:"}
    assert user["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},  # moved out of the tool result
        {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "text", "text": "notes"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    out = to_openai({"model": "m", "max_tokens": 5, "messages": HI, "tools": tools, "tool_choice": choice})
    assert out["tool_choice"] == expected and "parallel_tool_calls" not in out


def test_tool_choice_without_tools_is_left_out() -> None:
    out = to_openai(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": HI,
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        }
    )
    assert "tool_choice" not in out and "parallel_tool_calls" not in out


def test_structured_output_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = to_openai(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": HI,
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        }
    )
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _req(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 5, "messages": HI, **fields}


def _msgs(*content: Any, role: str = "user") -> dict[str, Any]:
    return _req(messages=[{"role": role, "content": list(content)}])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 5, "messages": HI}, "model"),
        (_req(model=""), "model"),
        ({"model": "m", "messages": HI}, "max_tokens"),
        (_req(max_tokens=0), "max_tokens"),
        (_req(max_tokens=True), "max_tokens"),
        (_req(messages=[]), "messages"),
        (_req(messages={"role": "user"}), "messages"),
        (_req(messages=["hi"]), "messages.0"),
        (_req(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
        (_req(messages=[*HI, {"content": "x"}]), "messages.1.role"),
        (_req(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
        (_req(messages=[{"role": "user"}]), "messages.0.content"),
        (_msgs("text"), "messages.0.content.0"),
        (_msgs({"text": "no type"}), "messages.0.content.0"),
        (_msgs({"type": "video"}), "messages.0.content.0.type"),
        (_msgs({"type": "tool_use", "id": "a", "name": "f", "input": {}}), "messages.0.content.0.type"),
        (_msgs({"type": "text", "text": 5}), "messages.0.content.0.text"),
        (_msgs({"type": "image", "source": {"type": "file", "file_id": "f"}}), "messages.0.content.0.source"),
        (_msgs({"type": "image", "source": {"type": "base64", "data": "x"}}), "messages.0.content.0.source.media_type"),
        (
            _msgs({"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}),
            "messages.0.content.0.source",
        ),
        (_msgs({"type": "tool_result", "content": "x"}), "messages.0.content.0.tool_use_id"),
        (_msgs({"type": "tool_result", "tool_use_id": "a", "content": 5}), "messages.0.content.0.content"),
        (
            _msgs({"type": "tool_result", "tool_use_id": "a", "content": [{"type": "tool_use"}]}),
            "messages.0.content.0.content.0.type",
        ),
        (_msgs({"type": "tool_result", "tool_use_id": "a"}, role="assistant"), "messages.0.content.0.type"),
        (_msgs({"type": "tool_use", "name": "f", "input": {}}, role="assistant"), "messages.0.content.0.id"),
        (
            _msgs({"type": "tool_use", "id": "a", "name": "f", "input": "{}"}, role="assistant"),
            "messages.0.content.0.input",
        ),
        (_req(system=5), "system"),
        (_req(system=[{"type": "image"}]), "system.0"),
        (_req(temperature=1.5), "temperature"),
        (_req(top_p="high"), "top_p"),
        (_req(top_k=-1), "top_k"),
        (_req(stop_sequences="END"), "stop_sequences"),
        (_req(metadata="u"), "metadata"),
        (_req(metadata={"user_id": 5}), "metadata.user_id"),
        (_req(stream="yes"), "stream"),
        (_req(tools={"name": "f"}), "tools"),
        (_req(tools=[{"name": "f"}]), "tools.0.input_schema"),
        (_req(tools=[{"input_schema": {}}]), "tools.0.name"),
        (_req(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
        (_req(tool_choice="auto"), "tool_choice"),
        (_req(tool_choice={"type": "maybe"}), "tool_choice.type"),
        (_req(tool_choice={"type": "tool"}), "tool_choice.name"),
        (_req(output_config={"format": {"type": "json_object"}}), "output_config.format"),
    ],
)
def test_bad_requests_name_the_field(body: Any, param: str) -> None:
    with pytest.raises(w.InvalidMessagesRequest) as info:
        w.messages_request_to_openai(body)
    assert info.value.param == param and str(info.value).startswith(param)
    assert isinstance(info.value, ValueError)


def test_body_that_is_not_an_object() -> None:
    with pytest.raises(w.InvalidMessagesRequest) as info:
        w.messages_request_to_openai([])  # type: ignore[arg-type]
    assert info.value.param is None


# -- whole responses -------------------------------------------------------------------------------


def _completion(message: dict[str, Any], finish: str | None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "x",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}}],
        "usage": usage or {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


def test_text_response_to_message() -> None:
    message = Message.model_validate(w.openai_response_to_messages(_completion({"content": "Hello"}, "stop"), "m"))
    assert message.id == "msg_1" and message.model == "m" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Hello"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 3)


def test_tool_response_to_message() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}}
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "not json"}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"x": [1]}'}},
        {"type": "function", "function": {"name": "h", "arguments": ""}},
    ]
    resp = _completion({"content": "ok", "tool_calls": calls}, "tool_calls", usage)
    message = Message.model_validate(w.openai_response_to_messages(resp, "m"))
    assert message.stop_reason == "tool_use" and message.usage.input_tokens == 7
    assert message.usage.cache_read_input_tokens == 2
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use", "tool_use"]
    assert message.content[1].input == {"_raw": "not json"}  # type: ignore[union-attr]
    assert message.content[2].input == {"x": [1]}  # type: ignore[union-attr]
    assert message.content[3].id == "toolu_2" and message.content[3].input == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("finish", "calls", "stop"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("content_filter", False, "refusal"),
        ("stop", True, "tool_use"),
        (None, False, "end_turn"),
        ("weird", False, "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, calls: bool, stop: str) -> None:
    tool_calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}] if calls else None
    resp = _completion({"content": None, "tool_calls": tool_calls}, finish)
    assert Message.model_validate(w.openai_response_to_messages(resp, "m")).stop_reason == stop


def test_lenient_response_shapes() -> None:
    empty = Message.model_validate(w.openai_response_to_messages({"choices": []}, "m"))
    assert empty.content == [] and empty.usage.input_tokens == 0 and empty.id.startswith("msg_")
    refusal = w.openai_response_to_messages(_completion({"content": None, "refusal": "no"}, "content_filter"), "m")
    assert refusal["content"] == [{"type": "text", "text": "no"}] and refusal["stop_reason"] == "refusal"


def test_round_trip_through_both_directions() -> None:
    anthropic_message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "Sure."},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"city": "Zürich"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 4, "cache_read_input_tokens": 5},
    }
    completion = translate.from_anthropic_response(anthropic_message, "claude", "r", 1)
    back = Message.model_validate(w.openai_response_to_messages(completion, "claude"))
    assert back.content == Message.model_validate(anthropic_message).content
    assert back.stop_reason == "tool_use" and back.usage.input_tokens == 11
    assert back.usage.cache_read_input_tokens == 5 and back.usage.output_tokens == 4
    request = {
        "model": "claude",
        "max_tokens": 9,
        "system": "sys",
        "messages": [
            *HI,
            {"role": "assistant", "content": anthropic_message["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "3 degrees"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "stop_sequences": ["Z"],
    }
    again = translate.to_anthropic_request(w.messages_request_to_openai(request), "claude")
    assert again["system"] == "sys" and again["tools"] == request["tools"] and again["tool_choice"] == {"type": "any"}
    assert again["messages"][1]["content"] == anthropic_message["content"]
    assert again["messages"][2]["content"] == request["messages"][2]["content"]  # type: ignore[index]
    assert again["stop_sequences"] == ["Z"] and again["max_tokens"] == 9
