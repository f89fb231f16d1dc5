"""Preambles shared by many prompts are learned on training prompts and stripped alike at serving time."""

from __future__ import annotations

from tests.routing.learned_helpers import ROUTERBENCH

from tokenomy.routing.learned import load_outcomes
from tokenomy.routing.learned.features import LONG_TAIL_CHARS, embedding_texts
from tokenomy.routing.learned.preamble import Preambles, learn_preambles

FEW_SHOT = (
    "Answer with one letter.\n\nQ: What is 1+1?\nA) 2\nB) 3\nAnswer: A\n\n"
    "Q: Is the sky green?\nA) yes\nB) no\nAnswer: B\n\n"
)


def test_learns_the_shared_few_shot_opening_and_strips_it_from_new_prompts() -> None:
    prompts = [f"{FEW_SHOT}Q: question number {i} about topic {i % 7}?\nA) x\nB) y\nAnswer:" for i in range(40)]
    prompts += [f"Write a function number {i} that adds numbers." for i in range(40)]  # share < a line: no preamble
    preambles = learn_preambles(prompts)
    assert preambles.texts == [FEW_SHOT]
    group, tail = preambles.split(f"{FEW_SHOT}Q: a prompt never seen?\nA) x\nB) y\nAnswer:")
    assert group == 1 and tail.startswith("Q: a prompt never seen?")
    assert preambles.split("Write a function that adds numbers.") == (0, "Write a function that adds numbers.")
    assert preambles.split(FEW_SHOT) == (0, FEW_SHOT)  # nothing after it: kept whole
    assert "Answer with one letter" in preambles.label(1) and preambles.label(0) == "no shared preamble"


def test_needs_enough_prompts_sharing_it() -> None:
    prompts = [f"{FEW_SHOT}Q: {i}?" for i in range(5)] + [f"other prompt {i}" for i in range(95)]
    assert learn_preambles(prompts).texts == []  # 5 < the minimum support of 8
    assert learn_preambles(prompts, min_support=5).texts == [FEW_SHOT]


def test_the_longest_matching_preamble_wins_and_the_router_file_order_is_kept() -> None:
    short, long = "A" * 70 + "\n", "A" * 70 + "\n" + "B" * 70 + "\n"
    preambles = Preambles([short, long])
    assert preambles.split(long + "question") == (2, "question")
    assert preambles.split(short + "question") == (1, "question")
    assert preambles.groups == 3


def test_routerbench_few_shot_tasks_are_found() -> None:
    outcomes = load_outcomes(ROUTERBENCH).split("train")
    preambles = learn_preambles(outcomes.prompts)
    assert len(preambles.texts) == 2  # arc-challenge and winogrande open with shared few-shot examples; mbpp does not
    groups = {task: {preambles.split(p)[0] for p, t in zip(outcomes.prompts, outcomes.tasks, strict=True) if t == task}
              for task in set(outcomes.tasks)}  # fmt: skip
    assert groups["mbpp"] == {0} and len(groups["arc-challenge"]) == 1 and len(groups["winogrande"]) == 1
    assert groups["arc-challenge"] != groups["winogrande"] != {0}


def test_long_tails_are_embedded_by_their_head_and_their_last_window() -> None:
    assert embedding_texts("short question?") == ["short question?"]
    tail = "context " * 400 + "So what is the answer?"
    first, last = embedding_texts(tail)
    assert len(tail) > LONG_TAIL_CHARS and first == tail and last.endswith("So what is the answer?")
    assert len(last) <= 1000 and not last.startswith(" ")
