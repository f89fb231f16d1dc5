"""Pure translation of the inbound Messages API, validated against the official SDKs' types."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from tokenomy.server import anthropic_wire as w

EVENT = TypeAdapter(RawMessageStreamEvent)


def test_request_to_openai() -> None:
    body = {
        "model": "m", "max_tokens": 10, "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi "},
                                         {"type": "image", "source": {"type": "url", "url": "http://x/i.png"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "calling"},
                                              {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "42"}]},
                                         {"type": "text", "text": "thanks"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "stop_sequences": ["X"], "metadata": {"user_id": "u"}, "stream": True, "top_k": 5,
    }
    out = w.messages_request_to_openai(body)
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert out["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "http://x/i.png"}}
    assert out["messages"][2]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "42"}
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["parallel_tool_calls"] is False and out["stop"] == ["X"] and out["user"] == "u"
    assert out["stream_options"] == {"include_usage": True} and "top_k" not in out


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
         "messages.0.content.0.type"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
          "tool_choice": {"type": "maybe"}}, "tool_choice.type"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(w.InvalidMessagesRequest) as info:
        w.messages_request_to_openai(body)
    assert info.value.param == param


def test_response_to_message() -> None:
    resp = {"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "ok", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}}}
    message = Message.model_validate(w.openai_response_to_messages(resp, "m"))
    assert message.stop_reason == "tool_use" and message.usage.input_tokens == 7
    assert message.content[1].input == {"_raw": "not json"}  # type: ignore[union-attr]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_stream_encoder_event_order() -> None:
    enc = w.MessagesStreamEncoder("m", "msg_1")
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}), _chunk({"content": "lo"}),
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6}},
    ]
    events = [e for c in chunks for e in enc.feed(c)] + enc.finish()
    for _, data in events:
        EVENT.validate_python(data)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use" and events[-2][1]["usage"]["output_tokens"] == 6
    assert enc.finish() == []
    name, data = w.error_event("api_error", "boom")
    assert name == "error" and data["error"]["message"] == "boom"
