"""Anthropic cache_control breakpoints: placed on stable, long prefixes only, never over the client's own."""

from __future__ import annotations

import copy
from typing import Any

from tokenomy.optimize.prompt_cache import PrefixMemory, PromptCachePlan, place_breakpoints


def count(text: str) -> int:
    return len(text.split())


LONG = "policy " * 1200


def request(turns: int = 1, system: Any = LONG, tools: Any = None) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"q{i} " + "x " * 10})
        if i < turns - 1:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": f"a{i}"}]})
    body: dict[str, Any] = {"model": "claude", "max_tokens": 10, "messages": messages}
    if system is not None:
        body["system"] = system
    if tools is not None:
        body["tools"] = tools
    return body


def test_long_system_prompt_gets_a_breakpoint_and_nothing_else_changes() -> None:
    body = request()
    original = copy.deepcopy(body)
    out, placed = place_breakpoints(body, 1024, count)
    assert placed == 1
    assert out["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    assert out["messages"] == body["messages"] and body == original  # pure: the input is untouched


def test_short_prefix_gets_none() -> None:
    out, placed = place_breakpoints(request(system="short"), 1024, count)
    assert placed == 0 and "cache_control" not in str(out)


def test_tools_only_prefix_marks_the_last_tool() -> None:
    tools = [{"name": "a", "description": "d " * 700, "input_schema": {}}, {"name": "b", "input_schema": {}}]
    out, placed = place_breakpoints(request(system=None, tools=tools), 500, count)
    assert placed == 1 and out["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in out["tools"][0]


def test_conversation_gets_a_breakpoint_before_the_last_user_turn() -> None:
    out, placed = place_breakpoints(request(turns=3), 1024, count)
    assert placed == 2
    before_last = out["messages"][-2]
    assert before_last["role"] == "assistant" and before_last["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in str(out["messages"][-1])


def test_client_breakpoints_are_left_alone() -> None:
    body = request(system=[{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}], turns=3)
    out, placed = place_breakpoints(body, 1024, count)
    assert placed == 0 and out is body


def test_auto_mode_waits_until_a_prefix_repeats() -> None:
    memory = PrefixMemory()
    first = PromptCachePlan("auto", 1024, count, memory)
    assert "cache_control" not in str(first.apply(request())) and first.placed == 0
    second = PromptCachePlan("auto", 1024, count, memory)
    assert "cache_control" in str(second.apply(request())) and second.placed == 1
    other = PromptCachePlan("auto", 1024, count, memory)
    other.apply(request(system="another " * 1200))
    assert other.placed == 0


def test_prefix_memory_forgets_after_its_ttl() -> None:
    memory = PrefixMemory(ttl_s=0.0)
    memory.add(b"k")
    assert not memory.check_and_add(b"k")
