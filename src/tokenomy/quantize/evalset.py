"""What ``tokenomy quantize`` asks each variant: a built-in known-answer set or a JSONL file.

A dedicated evaluation package may later supply datasets and scorers; until then this module
keeps a small built-in question set and two scorers (``contains`` and ``exact``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenomy.providers.local.variants import QUESTIONS


@dataclass(frozen=True, slots=True)
class Item:
    """One question and the answers that count as right."""

    prompt: str
    expected: tuple[str, ...]


BUILTIN: tuple[Item, ...] = (
    *(Item(q.question, q.accept) for q in QUESTIONS),
    Item("What is the boiling point of water in Celsius?", ("100",)),
    Item("Who wrote Romeo and Juliet?", ("shakespeare",)),
    Item("What is the largest planet in our solar system?", ("jupiter",)),
    Item("What color is the sky on a clear day?", ("blue",)),
)


def _contains(answer: str, expected: tuple[str, ...]) -> bool:
    text = answer.lower()
    return any(e.lower() in text for e in expected)


def _exact(answer: str, expected: tuple[str, ...]) -> bool:
    text = answer.strip().lower().rstrip(".")
    return any(text == e.strip().lower().rstrip(".") for e in expected)


SCORERS: dict[str, Callable[[str, tuple[str, ...]], bool]] = {"contains": _contains, "exact": _exact}


class EvalSetError(ValueError):
    """A dataset line that cannot be used, with its line number."""


def load(path: Path | None) -> tuple[Item, ...]:
    """The built-in set, or the JSONL file's ``{"prompt", "expected": str | [str]}`` lines."""
    if path is None:
        return BUILTIN
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalSetError(f"{path}: {exc.strerror or exc}") from None
    items: list[Item] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt, expected = row["prompt"], row["expected"]
        except (ValueError, KeyError, TypeError):
            raise EvalSetError(f'{path}:{number}: expected {{"prompt": ..., "expected": ...}}') from None
        answers = (expected,) if isinstance(expected, str) else tuple(str(e) for e in expected)
        if not isinstance(prompt, str) or not prompt.strip() or not answers:
            raise EvalSetError(f"{path}:{number}: empty prompt or expected answer")
        items.append(Item(prompt, answers))
    if not items:
        raise EvalSetError(f"{path}: no questions")
    return tuple(items)
