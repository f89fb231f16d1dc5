"""Every built-in scorer on its own cases, and the registry."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.scorers.base import ScoreContext, ScorerError, make_scorer, scorer_names

CTX = ScoreContext()


def item(expected: Any, **request: Any) -> EvalItem:
    return EvalItem("x", "t", [{"role": "user", "content": "q"}], expected, request)


async def value(spec: str, answer: str, expected: Any, ctx: ScoreContext = CTX, **request: Any) -> float:
    return (await make_scorer(spec).score(answer, item(expected, **request), ctx)).value


@pytest.mark.parametrize(
    ("answer", "expected", "want"),
    [("Paris.", "paris", 1.0), ("  PARIS  ", ["Lyon", "Paris"], 1.0), ("Paris, France", "Paris", 0.0)],
)
async def test_exact(answer: str, expected: Any, want: float) -> None:
    assert await value("exact", answer, expected) == want


async def test_contains_and_regex() -> None:
    assert await value("contains", "It is Paris, of course.", "paris") == 1.0
    assert await value("contains", "Parisian food", "paris") == 0.0  # whole words only
    assert await value("regex", "order #A-123 shipped", r"#A-\d+") == 1.0
    assert await value(r"regex:^\d{3}$", "123", None) == 1.0
    assert await value(r"regex:^\d{3}$", "1234", None) == 0.0
    with pytest.raises(ScorerError, match="invalid regex"):
        make_scorer("regex:(")


@pytest.mark.parametrize(
    "answer",
    [
        "B",
        "B)",
        "(B)",
        "B.",
        "b\n",
        "The answer is (B).",
        "Answer: b",
        "answer: B) wet palms",
        "**B**",
        "B) wet palms",
        "I think A is wrong. The answer is B",
    ],
)
async def test_choice_extracts_the_letter(answer: str) -> None:
    assert await value("choice", answer, "B") == 1.0, answer


@pytest.mark.parametrize("answer", ["A", "I do", "the answer is a dog", "", "Both are fine"])
async def test_choice_rejects_others(answer: str) -> None:
    assert await value("choice", answer, "B") == 0.0, answer


async def test_number() -> None:
    assert await value("number", "So she has 1,234 apples.", "1234") == 1.0
    assert await value("number", "3 + 4 = 7\n#### 7", "Natalia sold 48/2 = 24... #### 7") == 1.0
    assert await value("number", "It costs $18.00", 18) == 1.0
    assert await value("number", "about 17", "18") == 0.0
    assert await value("number:1", "about 17", "18") == 1.0
    assert await value("number:10%", "about 17", "18") == 1.0
    assert await value("number", "no idea", "18") == 0.0
    with pytest.raises(ValueError, match="no number"):
        await value("number", "5", "none")


SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "p",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}


async def test_json() -> None:
    assert await value("json", '{"name": "Ada", "age": 36}', {"name": "Ada", "age": 36}, response_format=SCHEMA) == 1
    assert await value("json", '```json\n{"name": "Ada", "age": 36}\n```', {"name": "Ada"}, response_format=SCHEMA) == 1
    assert await value("json", '{"name": "Ada", "age": "36"}', {"name": "Ada"}, response_format=SCHEMA) == 0  # schema
    assert await value("json", '{"name": "Bob", "age": 36}', {"name": "Ada", "age": 36}) == 0.5
    assert await value("json:age", '{"name": "Bob", "age": 36}', {"name": "Ada", "age": 36}) == 1.0
    assert await value("json", "Sure! {name: Ada}", {"name": "Ada"}) == 0.0


async def test_similarity_uses_the_embedded_model() -> None:
    scorer = make_scorer("similarity:0.7")
    near = await scorer.score("The cat sat on the mat.", item("A cat was sitting on the mat."), CTX)
    far = await scorer.score("Quarterly revenue rose 4%.", item("A cat was sitting on the mat."), CTX)
    assert near.value == 1.0 and far.value == 0.0
    assert float(near.detail.split()[1]) > float(far.detail.split()[1])


TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"


async def test_code_runs_tests_in_a_sandbox() -> None:
    good = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nEnjoy."
    assert await value("code", good, TESTS) == 1.0
    assert await value("code", "[PYTHON]\ndef add(a, b):\n    return a + b\n[/PYTHON]", [TESTS]) == 1.0
    wrong = await make_scorer("code").score("def add(a, b):\n    return a - b", item(TESTS), CTX)
    assert wrong.value == 0.0 and "AssertionError" in wrong.detail
    net = "import socket\ndef add(a, b):\n    socket.create_connection(('127.0.0.1', 9))\n    return a + b"
    blocked = await make_scorer("code").score(net, item(TESTS), CTX)
    assert blocked.value == 0.0 and "not allowed" in blocked.detail


async def test_code_kills_loops_and_hogs_at_their_limits() -> None:
    start = time.monotonic()
    loop = await make_scorer("code:1").score("def add(a, b):\n    while True: pass", item(TESTS), CTX)
    assert loop.value == 0.0 and "time limit" in loop.detail
    assert time.monotonic() - start < 10
    hog = await make_scorer("code:5,128").score("x = bytearray(1 << 30)\ndef add(a, b): return a + b", item(TESTS), CTX)
    assert hog.value == 0.0 and "memory limit" in hog.detail


class FakeJudge:
    """Answers judge prompts by rule: prefers the answer containing 'good'; counts calls."""

    def __init__(self, verdict: str | None = None) -> None:
        self.calls = 0
        self.verdict = verdict

    async def __call__(self, model: str, messages: list[dict[str, Any]], extra: dict[str, Any]) -> tuple[str, float]:
        self.calls += 1
        text = messages[0]["content"]
        if self.verdict is not None:
            return self.verdict, 0.01
        if "[Answer 1]" in text:
            first = text.split("[Answer 1]")[1].split("[Answer 2]")[0]
            second = text.split("[Answer 2]")[1]
            if "good" in first and "good" not in second:
                return "1", 0.01
            if "good" in second and "good" not in first:
                return "2", 0.01
            return "TIE", 0.01
        return "8", 0.01


async def test_judge_pairwise_asks_both_orders_and_counts_cost() -> None:
    ask = FakeJudge()
    ctx = ScoreContext(ask=ask, models=("judge",))
    win = await make_scorer("judge:judge").score("a good answer", item("a plain reference"), ctx)
    assert (win.value, ask.calls, win.cost_usd) == (1.0, 2, pytest.approx(0.02))
    loss = await make_scorer("judge:judge").score("meh", item("a good reference"), ctx)
    assert loss.value == 0.0
    biased = await make_scorer("judge:judge").score("x", item("y"), ScoreContext(ask=FakeJudge("1")))
    assert biased.value == 0.5  # always "the first": the two orders disagree, a tie
    rubric = await make_scorer("judge:judge,rubric").score("x", item("y"), ctx)
    assert rubric.value == pytest.approx(7 / 9)
    with pytest.raises(ValueError, match="no verdict") as failed:
        await make_scorer("judge:judge").score("x", item("y"), ScoreContext(ask=FakeJudge("unsure")))
    assert getattr(failed.value, "cost_usd", None) == pytest.approx(0.01)  # the unreadable reply was paid for


def test_registry_names_the_known_scorers() -> None:
    assert {"exact", "contains", "regex", "choice", "number", "json", "similarity", "code", "judge"} <= set(
        scorer_names()
    )
    with pytest.raises(ScorerError, match=r"unknown scorer 'exactt'.*did you mean 'exact'"):
        make_scorer("exactt")
    with pytest.raises(ScorerError, match="judge:MODEL"):
        make_scorer("judge")


def test_a_third_party_scorer_is_found_through_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from tokenomy.evaluate.scorers import base

    plugin = EntryPoint("shout", "tests.evaluate.plugin_scorer:make", base.GROUP)
    real = base.entry_points
    monkeypatch.setattr(base, "entry_points", lambda group: [*real(group=group), plugin])
    assert "shout" in scorer_names()
    scorer = make_scorer("shout:!")
    assert scorer.name == "shout"


async def test_the_plugin_scores() -> None:
    from tests.evaluate.plugin_scorer import make

    assert (await make("!").score("HI!", item("x"), CTX)).value == 1.0
    assert (await make("!").score("hi", item("x"), CTX)).value == 0.0
