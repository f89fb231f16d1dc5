"""Pure translation of OpenAI stream chunks into Messages API events, checked against the Anthropic SDK."""

from __future__ import annotations

from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import ErrorResponse, ParsedMessage, RawMessageStreamEvent
from pydantic import TypeAdapter

from tokenomy.server import anthropic_wire as w

EVENT: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _check(events: list[tuple[str, dict[str, Any]]]) -> ParsedMessage[Any]:
    """Validate every event with the SDK's types and rebuild the message with the SDK's accumulator."""
    snapshot: ParsedMessage[Any] | None = None
    buffers: dict[int, bytes] = {}
    for name, data in events:
        event = EVENT.validate_python(data)
        assert event.type == name
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    return snapshot


TEXT_THEN_TOOL = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hel"}),
    _chunk({"content": "lo"}),
    _chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
    _chunk({}, "tool_calls"),
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": [],
        "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
    },
]


def test_stream_encoder_event_order() -> None:
    enc = w.MessagesStreamEncoder("m", "msg_1")
    events = [e for c in TEXT_THEN_TOOL for e in enc.feed(c)]
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [d["index"] for n, d in events if n.startswith("content_block")] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use" and events[-2][1]["usage"]["output_tokens"] == 6
    assert enc.finish() == [] and enc.feed(_chunk({"content": "late"})) == []
    message = _check(events)
    assert message.id == "msg_1" and message.model == "m" and message.stop_reason == "tool_use"
    assert message.content[0].type == "text" and message.content[0].text == "Hello"
    assert message.content[1].type == "tool_use" and message.content[1].input == {"a": 1}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 6)  # input taken from message_delta


def test_stream_without_usage_chunk_ends_on_finish() -> None:
    enc = w.MessagesStreamEncoder("m", "msg_2")
    events = [e for c in [_chunk({"content": "Hi"}), _chunk({}, "length")] for e in enc.feed(c)]
    assert [n for n, _ in events][-1] == "content_block_stop"  # waiting for a usage chunk
    events += enc.finish()
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    message = _check(events)
    assert message.stop_reason == "max_tokens" and message.content[0].text == "Hi"  # type: ignore[union-attr]


def test_stream_usage_in_the_finish_chunk_and_late_tool_names() -> None:
    enc = w.MessagesStreamEncoder("m", "msg_3")
    chunks = [
        _chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": '{"k"'}}]}),  # name comes later
        _chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ": 1}"}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
        {
            **_chunk({}, "stop"),
            "usage": {"prompt_tokens": 8, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 3}},
        },
    ]
    events = [e for c in chunks for e in enc.feed(c)]
    assert events[-1][0] == "message_stop" and enc.finish() == []
    message = _check(events)
    assert [(b.id, b.name, b.input) for b in message.content] == [("a", "f", {"k": 1}), ("b", "g", {})]  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"  # a "stop" that carries tool calls
    assert message.usage.input_tokens == 5 and message.usage.cache_read_input_tokens == 3


def test_empty_stream_and_odd_chunks() -> None:
    enc = w.MessagesStreamEncoder("m", "msg_4")
    events = enc.feed({"choices": [{"index": 1, "delta": {"content": "other choice"}}]})
    assert [n for n, _ in events] == ["message_start"]
    assert enc.feed({"choices": "nonsense"}) == [] and enc.feed({"choices": [{"index": 0, "delta": None}]}) == []
    events += enc.finish()
    assert [n for n, _ in events] == ["message_start", "message_delta", "message_stop"]
    message = _check(events)
    assert message.content == [] and message.stop_reason == "end_turn"


def test_tool_call_that_never_gets_a_name_still_becomes_a_block() -> None:
    enc = w.MessagesStreamEncoder("m", "msg_5")
    events = enc.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})) + enc.finish()
    message = _check(events)
    block = message.content[0]
    assert block.type == "tool_use" and block.id == "toolu_5_0" and block.input == {}


def test_error_event() -> None:
    name, data = w.error_event("overloaded_error", "busy")
    assert name == "error" and data == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert ErrorResponse.model_validate(data).error.type == "overloaded_error"


def test_whole_message_replays_as_valid_events() -> None:
    """A cached native answer sent to a streaming client: the SDK rebuilds the same message."""
    from tokenomy.server.anthropic_wire_stream import events_from_message

    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
        "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 7, "cache_read_input_tokens": 3},
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "hi"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}}],
    }  # fmt: skip
    rebuilt = _check(events_from_message(message))
    assert rebuilt.model_dump(exclude_none=True)["content"] == message["content"]
    assert rebuilt.stop_reason == "tool_use" and rebuilt.usage.output_tokens == 7
    assert rebuilt.usage.cache_read_input_tokens == 3
