"""The conversation-context fingerprint."""

from __future__ import annotations

from typing import Any

from tokenomy.cache.semantic.context import MAX_TEXT_CHARS, conversation_context


def body(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": "fast", "messages": list(messages), "temperature": 0, **params}


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_text_and_fingerprint() -> None:
    found = conversation_context("t/a/", "fast", body(user("  What is the capital of France? ")))
    assert found is not None
    context, text = found
    assert text == "What is the capital of France?"
    assert len(context) == 32
    again = conversation_context("t/a/", "fast", body(user("Capital of France?")))
    assert again is not None and again[0] == context  # the last user text is not part of the context


def test_everything_before_the_last_turn_counts() -> None:
    base = conversation_context("t/a/", "fast", body(user("hi")))
    variants = [
        conversation_context("t/b/", "fast", body(user("hi"))),
        conversation_context("t/a/", "other", body(user("hi"))),
        conversation_context("t/a/", "fast", body({"role": "system", "content": "Be terse."}, user("hi"))),
        conversation_context("t/a/", "fast", body(user("hi"), temperature=0.5)),
        conversation_context("t/a/", "fast", body(user("hi"), tools=[{"type": "function"}])),
        conversation_context("t/a/", "fast", body(user("x"), {"role": "assistant", "content": "y"}, user("hi"))),
        conversation_context("t/a/", "fast", body({"role": "user", "content": "hi", "name": "bob"})),
    ]
    fingerprints = {v[0] for v in variants if v is not None}
    assert base is not None and len(fingerprints) == len(variants) and base[0] not in fingerprints


def test_fields_that_cannot_change_the_answer_do_not_count() -> None:
    a = conversation_context("t/a/", "fast", body(user("hi")))
    b = conversation_context("t/a/", "fast", body(user("hi"), stream=True, user="u1", metadata={"x": 1}))
    assert a == b


def test_not_applicable() -> None:
    assert conversation_context("t", "m", {"messages": []}) is None
    assert conversation_context("t", "m", {"prompt": "hi"}) is None
    assert conversation_context("t", "m", body(user("q"), {"role": "assistant", "content": "prefill"})) is None
    assert conversation_context("t", "m", body({"role": "tool", "tool_call_id": "1", "content": "42"})) is None
    image = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert conversation_context("t", "m", body(user(image))) is None
    assert conversation_context("t", "m", body(user("   "))) is None
    assert conversation_context("t", "m", body(user("x" * (MAX_TEXT_CHARS + 1)))) is None
    earlier_image = body(user(image), {"role": "assistant", "content": "a cat"}, user("and its name?"))
    assert conversation_context("t", "m", earlier_image) is None  # an image anywhere: exact tier only
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]}
    result = {"role": "tool", "tool_call_id": "1", "content": "42"}
    assert conversation_context("t", "m", body(user("x"), call, result, user("and then?"))) is None
    parts = [{"type": "text", "text": "capital"}, {"type": "text", "text": "of France"}]
    assert conversation_context("t", "m", body(user(parts))) == (
        conversation_context("t", "m", body(user("capital\nof France")))
    )
