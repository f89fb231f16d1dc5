"""Pure Anthropic -> OpenAI stream translation (an Anthropic upstream), checked against the OpenAI SDK's types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from tokenomy.providers.anthropic import translate as t

# Recorded from the Messages API (the weather example of Anthropic's streaming docs), with cache reads.
RECORDED: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "stop_sequence": None,
                "content": [],
                "stop_reason": None,
                "usage": {
                    "input_tokens": 472,
                    "output_tokens": 2,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 100,
                },
            },
        },
    ),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Okay, let's check the weather"},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " for San Francisco, CA:"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    *[
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": piece}},
        )
        for piece in ["", '{"location":', ' "San Fra', 'ncisco, CA"', ', "unit": "fah', 'renheit"}']
    ],
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def _translate(events: list[tuple[str, dict[str, Any]]], include_usage: bool = True) -> list[ChatCompletionChunk]:
    tr = t.AnthropicStreamTranslator("claude", "req_9", 7, include_usage=include_usage)
    return [ChatCompletionChunk.model_validate(c) for e, d in events for c in tr.feed(e, d)]


def test_recorded_stream_translation() -> None:
    chunks = _translate(RECORDED)
    assert {c.id for c in chunks} == {"chatcmpl-req_9"} and {c.model for c in chunks} == {"claude"}
    assert chunks[0].choices[0].delta.role == "assistant"
    first_call = next(c for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    call = first_call.choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (call.index, call.id, call.type) == (0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "function")
    assert call.function is not None and call.function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices].count("tool_calls") == 1
    assert chunks[-2].choices[0].finish_reason == "tool_calls" and chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (572, 89, 661)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 100
    # the openai SDK's own accumulator rebuilds the whole answer from the chunks
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    final = state.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Okay, let's check the weather for San Francisco, CA:"
    assert message.tool_calls is not None and message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {
        "location": "San Francisco, CA",
        "unit": "fahrenheit",
    }
    assert final.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_get_their_own_index() -> None:
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": {"usage": {"input_tokens": 3}}})]
    for block in (0, 1):
        events += [
            (
                "content_block_start",
                {"index": block, "content_block": {"type": "tool_use", "id": f"t{block}", "name": "f", "input": {}}},
            ),
            (
                "content_block_delta",
                {"index": block, "delta": {"type": "input_json_delta", "partial_json": f'{{"n": {block}}}'}},
            ),
            ("content_block_stop", {"index": block}),
        ]
    events += [
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ("message_stop", {}),
    ]
    chunks = _translate(events, include_usage=False)
    calls = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.index, tc.id) for tc in calls if tc.id] == [(0, "t0"), (1, "t1")]
    assert [tc.function.arguments for tc in calls if tc.function and not tc.id] == ['{"n": 0}', '{"n": 1}']
    assert all(c.usage is None and c.choices for c in chunks)  # no usage chunk when not asked


def test_stream_edge_cases() -> None:
    tr = t.AnthropicStreamTranslator("m", "chatcmpl-x", 1, include_usage=True)
    assert tr.feed("ping", {"type": "ping"}) == []
    assert tr.feed("some_future_event", {}) == []
    # message_stop without message_delta still ends the choice; later events are ignored
    chunks = tr.feed("message_stop", {"type": "message_stop"})
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "stop"]
    assert chunks[-1]["usage"]["total_tokens"] == 0 and chunks[-1]["id"] == "chatcmpl-x"
    assert tr.feed("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "late"}}) == []


def test_stream_errors_and_malformed_events() -> None:
    tr = t.AnthropicStreamTranslator("m", "r", 1, include_usage=False)
    with pytest.raises(t.UpstreamStreamError, match="Overloaded"):
        tr.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    bad: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {}),
        ("content_block_start", {"content_block": {"type": "text"}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "name": "f"}}),
        ("content_block_delta", {"delta": {}}),
        ("content_block_delta", {"index": 5, "delta": {"type": "text_delta", "text": "x"}}),
        ("message_delta", {"usage": {"output_tokens": 1}}),
        ("message_delta", {"delta": {}, "usage": {"output_tokens": "1"}}),
    ]
    for event, data in bad:
        with pytest.raises(t.UpstreamStreamError):
            t.AnthropicStreamTranslator("m", "r", 1, include_usage=False).feed(event, data)
    tr = t.AnthropicStreamTranslator("m", "r", 1, include_usage=False)
    tr.feed("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    with pytest.raises(t.UpstreamStreamError, match="not a tool_use block"):
        tr.feed("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}})
    with pytest.raises(t.UpstreamStreamError):
        tr.feed("content_block_delta", {"index": 0, "delta": {"type": "text_delta"}})
