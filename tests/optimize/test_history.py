"""History trimming keeps system prompts, recent turns and tool pairs; refuses what it cannot do safely."""

from __future__ import annotations

from typing import Any

from tokenomy.optimize import history


def words(messages: list[Any]) -> list[int]:
    return [len(str(m.get("content") or "").split()) + 1 for m in messages]


def chat(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i} " + "word " * 20})
        messages.append({"role": "assistant", "content": f"answer {i} " + "word " * 20})
    return messages


def test_middle_turns_go_oldest_first_and_the_rest_stays_in_order() -> None:
    messages = chat(10)
    out = history.apply({"messages": messages}, budget=120, keep_last=4, count=words)
    assert out.body is not None and out.warning is None
    kept = out.body["messages"]
    assert kept[0] == messages[0]
    assert kept[-4:] == messages[-4:]
    assert sum(words(kept)) <= 120
    assert out.dropped == len(messages) - len(kept)
    assert [m for m in messages if m in kept] == kept  # original order
    assert kept[1]["role"] == "user"  # whole turns go


def test_under_budget_is_unchanged() -> None:
    assert history.apply({"messages": chat(2)}, budget=10_000, keep_last=2, count=words).body is None


def test_a_tool_call_is_never_separated_from_its_result() -> None:
    messages = chat(3)
    messages += [
        {"role": "user", "content": "look it up " + "w " * 30},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "result " + "r " * 30},
        {"role": "assistant", "content": "done"},
    ]  # fmt: skip
    messages += chat(3)[1:]
    for budget in range(60, 400, 7):
        out = history.apply({"messages": messages}, budget=budget, keep_last=2, count=words)
        kept = (out.body or {"messages": messages})["messages"]
        has_call = any(m.get("tool_calls") for m in kept)
        has_result = any(m["role"] == "tool" for m in kept)
        assert has_call == has_result


def test_orphan_tool_result_passes_unchanged_with_a_warning() -> None:
    messages = [*chat(6), {"role": "tool", "tool_call_id": "nope", "content": "x"}]
    out = history.apply({"messages": messages}, budget=50, keep_last=2, count=words)
    assert out.body is None and out.warning is not None and "without its call" in out.warning


def test_budget_below_what_must_be_kept_passes_unchanged_with_a_warning() -> None:
    messages = chat(6)
    messages[0] = {"role": "system", "content": "rule " * 200}
    out = history.apply({"messages": messages}, budget=100, keep_last=2, count=words)
    assert out.body is None and out.warning is not None and "over the budget" in out.warning


def test_anthropic_shaped_tool_use_and_result_stay_together() -> None:
    messages: list[dict[str, Any]] = []
    for i in range(6):
        messages += [
            {"role": "user", "content": f"question {i} " + "w " * 20},
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"u{i}", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"u{i}", "content": "r " * 20}]},
            {"role": "assistant", "content": f"answer {i} " + "w " * 20},
        ]
    messages.append({"role": "user", "content": "last"})

    def count(ms: list[Any]) -> list[int]:
        return [len(str(m["content"]).split()) for m in ms]

    for budget in range(40, 300, 9):
        out = history.apply({"messages": messages}, budget=budget, keep_last=2, count=count)
        kept = (out.body or {"messages": messages})["messages"]
        uses = {
            b["id"] for m in kept if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_use"
        }
        results = {b["tool_use_id"] for m in kept if isinstance(m["content"], list)
                   for b in m["content"] if b["type"] == "tool_result"}  # fmt: skip
        assert uses == results


def test_anthropic_orphan_tool_result_is_refused() -> None:
    messages = [*chat(6), {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "r"}]}]
    out = history.apply({"messages": messages}, budget=50, keep_last=2, count=words)
    assert out.body is None and out.warning is not None
