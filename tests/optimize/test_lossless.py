"""The lossless transforms change no value the model reads: property tests over random requests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomy.optimize import dedupe_system, minify_json, whitespace

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip
containers = st.one_of(
    st.lists(json_values, max_size=5), st.dictionaries(st.text(max_size=10), json_values, max_size=5)
)


@st.composite
def pretty_json(draw: st.DrawFn) -> str:
    value = draw(containers)
    return json.dumps(value, indent=draw(st.sampled_from([None, 2, 4])), ensure_ascii=draw(st.booleans()))


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Chat requests with tool schemas, tool calls with JSON arguments, JSON tool results and JSON text parts."""
    schema = {"type": "object", "properties": draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))}
    messages: list[dict[str, Any]] = [{"role": "system", "content": draw(st.text(max_size=40))}]
    for i in range(draw(st.integers(0, 3))):
        call_id = f"call_{i}"
        messages.append({"role": "user", "content": [{"type": "text", "text": draw(pretty_json())}]})
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "f", "arguments": draw(pretty_json())}}
                ],
            }
        )
        messages.append(
            {"role": "tool", "tool_call_id": call_id, "content": draw(pretty_json() | st.text(max_size=30))}
        )
    messages.append({"role": "user", "content": draw(st.text(max_size=40))})
    return {
        "model": "m",
        "messages": messages,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
    }


def _parsed(text: str) -> Any:
    try:
        return ("json", json.loads(text))
    except ValueError:
        return ("text", text)


def _values(body: dict[str, Any]) -> list[Any]:
    """Every string the model reads, parsed as JSON where it is JSON."""
    out: list[Any] = [body["tools"]]
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            out.append(_parsed(content))
        elif isinstance(content, list):
            out.extend(_parsed(p["text"]) for p in content)
        for call in message.get("tool_calls") or ():
            out.append(_parsed(call["function"]["arguments"]))
    return out


@settings(max_examples=100, deadline=None)
@given(requests())
def test_minified_request_parses_to_the_same_objects(body: dict[str, Any]) -> None:
    minified = minify_json.apply(body) or body
    assert _values(minified) == _values(body)
    assert len(json.dumps(minified)) <= len(json.dumps(body))


@given(containers)
def test_pretty_json_tool_result_is_compacted(value: Any) -> None:
    pretty = json.dumps(value, indent=2)
    body = {"messages": [{"role": "tool", "tool_call_id": "c", "content": pretty}]}
    out = minify_json.apply(body)
    if "\n" in pretty or ": " in pretty or ", " in pretty:
        assert out is not None
        assert json.loads(out["messages"][0]["content"]) == value
        assert len(out["messages"][0]["content"]) < len(pretty)


def test_text_and_scalars_and_bad_json_are_left_alone() -> None:
    for text in (
        "hello {world}",
        "  42  ",
        '{"a": NaN}',
        '{"a": 1',
        "[1, 2] and more",
    ):
        assert minify_json.minify(text) == text
    big = '{"n": 123456789012345678901234567890, "x": 0.1000000000000000055511151231257827}'
    assert json.loads(minify_json.minify(big)) == json.loads(big)  # digits kept exactly


def test_input_body_is_never_mutated() -> None:
    body = {"messages": [{"role": "user", "content": '{\n  "a": 1\n}'}]}
    snapshot = json.dumps(body)
    assert minify_json.apply(body) is not None
    assert json.dumps(body) == snapshot


@given(st.text(alphabet=" \t\nab`~x", max_size=80))
def test_whitespace_never_touches_code_fences_and_keeps_words(text: str) -> None:
    code = "```\nkeep   this  \n\n\n\nexactly \n```"
    out = whitespace.normalize(f"{text}\n{code}\n{text}")
    if text.count("```") == 0 and text.count("~~~") == 0:
        assert code in out
    assert out.split() == f"{text}\n{code}\n{text}".split()


def test_whitespace_rules() -> None:
    assert whitespace.normalize("a  \nb\t\n\n\n\nc") == "a\nb\n\nc"
    assert whitespace.normalize("    indented\n| a  | b |") == "    indented\n| a  | b |"
    body = {"messages": [{"role": "tool", "tool_call_id": "c", "content": "x  \n\n\n\ny"}]}
    assert whitespace.apply(body) is None  # tool results may be file contents: untouched


def test_only_exact_repeats_of_system_messages_are_dropped() -> None:
    system = {"role": "system", "content": "Be brief."}
    body = {
        "messages": [
            system,
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Be brief!"},
            {"role": "user", "content": "hi"},
        ]
    }
    out = dedupe_system.apply(body)
    assert out is not None
    assert [m["content"] for m in out["messages"]] == ["Be brief.", "hi", "Be brief!", "hi"]
    assert dedupe_system.apply(out) is None
