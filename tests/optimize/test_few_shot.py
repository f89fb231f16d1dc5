"""Few-shot selection with the embedded MiniLM: the three forms of examples, order kept, nothing else touched."""

from __future__ import annotations

from typing import Any

from tokenomy.optimize import few_shot
from tokenomy.providers.local.shared_embed import shared_embedder

LEGS = ["Q: How many legs do 3 dogs have?\nA: 12", "Q: How many legs do 2 cats have?\nA: 8"]
OTHER = ["Q: What is the capital of Italy?\nA: Rome", "Q: Who wrote Hamlet?\nA: Shakespeare",
         "Q: What colour is the sky?\nA: Blue"]  # fmt: skip


async def test_examples_and_question_in_one_user_message() -> None:
    blocks = [OTHER[0], LEGS[0], OTHER[1], LEGS[1], OTHER[2]]
    text = "\n\n".join([*blocks, "How many legs do 5 spiders have?"])
    body = {"messages": [{"role": "user", "content": text}]}
    out = await few_shot.apply(body, 2, shared_embedder().aembed)
    assert out.body is not None and (out.kept, out.found) == (2, 5)
    assert out.body["messages"][0]["content"] == "\n\n".join([LEGS[0], LEGS[1], "How many legs do 5 spiders have?"])


async def test_named_example_messages() -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Answer briefly."}]
    for demo in [OTHER[0], LEGS[0], OTHER[1], LEGS[1], OTHER[2]]:
        question, answer = demo.split("\n")
        messages += [{"role": "system", "name": "example_user", "content": question},
                     {"role": "system", "name": "example_assistant", "content": answer}]  # fmt: skip
    messages.append({"role": "user", "content": "How many legs do 4 birds have?"})
    out = await few_shot.apply({"messages": messages}, 2, shared_embedder().aembed)
    assert out.body is not None
    kept = [m["content"] for m in out.body["messages"] if m.get("name") == "example_user"]
    assert kept == ["Q: How many legs do 3 dogs have?", "Q: How many legs do 2 cats have?"]
    assert out.body["messages"][0] == messages[0] and out.body["messages"][-1] == messages[-1]


async def test_too_few_examples_or_tool_conversations_are_left_alone() -> None:
    few = {"messages": [{"role": "user", "content": "\n\n".join([LEGS[0], OTHER[0], "q?"])}]}
    assert (await few_shot.apply(few, 2, shared_embedder().aembed)).body is None
    tools = {"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"}, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t", "content": "r"}, {"role": "user", "content": "f"},
    ]}  # fmt: skip
    assert (await few_shot.apply(tools, 1, shared_embedder().aembed)).body is None
