"""Pure translation of the Responses API, checked against the official ``openai`` SDK's types:
requests are valid Responses requests in and valid chat requests out; answers, whole or streamed,
are valid ``Response`` objects and ``ResponseStreamEvent`` events."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
from pydantic import TypeAdapter
from tests.support.sdk_types import materialise

from tokenomy.server.responses_events import ResponsesStreamEncoder, events_from_response, response_from_chat
from tokenomy.server.responses_wire import check_request, normalize_items, to_chat

EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
RESPONSES_REQUEST = TypeAdapter(ResponseCreateParamsNonStreaming)
CHAT = TypeAdapter(CompletionCreateParamsNonStreaming)
CHAT_STREAM = TypeAdapter(CompletionCreateParamsStreaming)

IMAGE = "data:image/png;base64,AAAA"
RICH: dict[str, Any] = {
    "model": "m", "instructions": "be brief", "max_output_tokens": 64, "temperature": 0.2, "top_p": 0.9,
    "parallel_tool_calls": False, "reasoning": {"effort": "low"}, "top_logprobs": 2, "user": "u",
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True},
             "verbosity": "low"},
    "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}],
    "tool_choice": {"type": "function", "name": "f"},
    "input": [
        {"role": "developer", "content": "dev note"},
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": IMAGE, "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "calling", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ],
}  # fmt: skip


def test_rich_request_translates_to_a_valid_chat_request() -> None:
    materialise(RESPONSES_REQUEST.validate_python(RICH))  # the sample is a real Responses request
    chat, problems = to_chat(check_request(RICH), normalize_items(RICH["input"]))
    assert problems == []
    materialise(CHAT.validate_python(chat))
    assert [m["role"] for m in chat["messages"]] == ["system", "developer", "user", "assistant", "tool"]
    assert chat["messages"][3] == {"role": "assistant", "content": "calling", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}  # fmt: skip
    assert chat["messages"][2]["content"][1] == {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}}
    assert chat["max_completion_tokens"] == 64 and chat["reasoning_effort"] == "low" and chat["verbosity"] == "low"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"]["json_schema"] == {"name": "x", "schema": {"type": "object"}, "strict": True}
    assert chat["logprobs"] is True and chat["top_logprobs"] == 2


def test_streaming_request_asks_for_usage() -> None:
    chat, _ = to_chat({"model": "m", "input": "hi", "stream": True}, normalize_items("hi"))
    materialise(CHAT_STREAM.validate_python(chat))
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"tools": [{"type": "web_search"}]}, "tools[0]"), ({"background": True}, "background"),
     ({"conversation": "conv_1"}, "conversation"), ({"brand_new": 1}, "brand_new"),
     ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
     ({"text": {"format": {"type": "grammar"}}}, "text.format")],
)  # fmt: skip
def test_untranslatable_fields_are_problems(extra: dict[str, Any], param: str) -> None:
    body = {"model": "m", "input": "hi", **extra}
    _chat, problems = to_chat(body, normalize_items(body["input"]))
    assert param in [p for p, _ in problems]


CHAT_ANSWER = {
    "id": "c", "object": "chat.completion", "created": 1, "model": "up",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "thinking aloud",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
              "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}},
}  # fmt: skip


def test_chat_answer_is_a_valid_response() -> None:
    response = Response.model_validate(response_from_chat(CHAT_ANSWER, RICH, "resp_1", "m"))
    assert response.output_text == "thinking aloud" and response.status == "completed"
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 2 and response.instructions == "be brief"
    truncated = {**CHAT_ANSWER, "choices": [{**CHAT_ANSWER["choices"][0], "finish_reason": "length"}]}  # type: ignore[index]
    cut = Response.model_validate(response_from_chat(truncated, {"model": "m"}, "resp_2", "m"))
    assert cut.status == "incomplete" and cut.incomplete_details is not None


def _chunks() -> list[dict[str, Any]]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    deltas = [{"role": "assistant", "content": ""}, {"content": "hel"}, {"content": "lo"},
              {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "f", "arguments": ""}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}]  # fmt: skip
    out = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    out.append({**base, "choices": [], "usage": CHAT_ANSWER["usage"]})
    return out


def test_stream_events_are_valid_and_add_up() -> None:
    encoder = ResponsesStreamEncoder({"model": "m"}, "resp_1", "m")
    events = [e for chunk in _chunks() for e in encoder.feed(chunk)] + encoder.finish()
    parsed = [EVENT.validate_python(data) for _kind, data in events]
    assert all(kind == data["type"] for kind, data in events)
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    final = parsed[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "hello" and final.response.output[1].arguments == '{"a": 1}'  # type: ignore[union-attr]
    again = [EVENT.validate_python(data) for _kind, data in events_from_response(final.response.model_dump())]
    assert again[-1].type == "response.completed" and again[-1].response.output_text == "hello"  # type: ignore[union-attr]
    assert "".join(e.delta for e in again if e.type == "response.output_text.delta") == "hello"


def test_stream_failure_events_are_valid() -> None:
    encoder = ResponsesStreamEncoder({"model": "m"}, "resp_1", "m")
    encoder.feed(_chunks()[1])
    parsed = [EVENT.validate_python(data) for _kind, data in encoder.error("upstream_bad_stream", "cut", None)]
    assert [e.type for e in parsed][-2:] == ["error", "response.failed"]
