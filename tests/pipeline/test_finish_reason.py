"""Reading why an answer stopped from each answer shape the gateway passes on."""

from __future__ import annotations

from typing import Any

import pytest

from tokenomy.pipeline.finish_reason import merge, of_body, of_event


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ({"choices": [{"finish_reason": "stop"}]}, "stop"),
        ({"choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}]}, "length"),  # n=2, one cut short
        ({"choices": [{"finish_reason": None}]}, None),
        ({"choices": "broken"}, None),
        ({"type": "message", "stop_reason": "max_tokens"}, "length"),
        ({"type": "message", "stop_reason": "tool_use"}, "tool_calls"),
        ({"type": "message", "stop_reason": "a-new-reason" * 10}, "a-new-reasona-new-reasona-new-re"),  # bounded
        (
            {"object": "response", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}},
            "length",
        ),
        ({"object": "response", "status": "completed", "output": [{"type": "function_call"}]}, "tool_calls"),
        ({"object": "response", "status": "completed", "output": [{"type": "message"}]}, "stop"),
        ({"object": "embedding"}, None),
    ],
)
def test_whole_answers(body: dict[str, Any], want: str | None) -> None:
    assert of_body(body) == want


def test_events_and_chunks() -> None:
    chunk = {"object": "chat.completion.chunk", "choices": [{"delta": {}, "finish_reason": "length"}]}
    assert of_event(chunk) == "length"
    assert of_event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}) == "stop"
    assert of_event({"type": "content_block_delta", "delta": {"text": "x"}}) is None
    incomplete = {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    assert of_event({"type": "response.incomplete", "response": incomplete}) == "length"
    assert of_event({"type": "response.completed", "response": "broken"}) is None


def test_length_sticks_once_seen() -> None:
    assert merge(None, "stop") == "stop"
    assert merge("stop", "length") == "length"
    assert merge("length", "stop") == "length"
    assert merge("stop", "tool_calls") == "stop"
    assert merge("stop", None) == "stop"
