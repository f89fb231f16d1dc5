"""Scorers on the answer's text: ``exact``, ``contains``, ``regex``, ``choice`` and ``number``.

Each compares the answer with the item's ``expected`` (a string, or a list of acceptable strings)
and scores 1 or 0. Every scorer fails the item (score 0, with the reason in ``detail``) rather than
raising when the answer is unusable; it raises only when the item itself cannot be scored (no
``expected``), which counts as a scoring error, not a wrong answer.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Any

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.scorers.base import Score, ScoreContext

_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """Case-folded, punctuation as spaces, whitespace collapsed, accents kept (NFKC)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT).split())


def expected_strings(item: EvalItem) -> list[str]:
    """The acceptable answers: ``expected`` as a string or a list of strings."""
    value = item.expected
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise ValueError(f"item {item.id!r}: this scorer needs 'expected' as a string or a list of strings")


@dataclass(frozen=True, slots=True)
class Exact:
    """1 when the normalized answer equals a normalized expected answer."""

    name: str = "exact"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        got = normalize(answer)
        ok = any(got == normalize(e) for e in expected_strings(item))
        return Score(1.0 if ok else 0.0, "" if ok else f"got {got[:60]!r}")


@dataclass(frozen=True, slots=True)
class Contains:
    """1 when the normalized answer contains a normalized expected answer (as whole words)."""

    name: str = "contains"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        got = f" {normalize(answer)} "
        ok = any(f" {normalize(e)} " in got for e in expected_strings(item))
        return Score(1.0 if ok else 0.0, "" if ok else "expected text not found")


@dataclass(frozen=True, slots=True)
class Regex:
    """1 when ``re.search(pattern, answer)`` matches; the pattern is the scorer's argument or ``expected``."""

    pattern: re.Pattern[str] | None = None
    name: str = "regex"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        patterns = [self.pattern] if self.pattern is not None else [_compile(p) for p in expected_strings(item)]
        ok = any(p.search(answer) for p in patterns)
        return Score(1.0 if ok else 0.0, "" if ok else "no match")


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None


# "The answer is (B).", "Answer: b", "answer: B)", "correct option is C" (a lower-case letter only
# when nothing word-like follows it, so "the answer is a dog" picks nothing)
_MARKED = r"(?i:answer|option|choice)\s*(?:is|:)?\s*[:\-]?\s*(?:\(([{B}])\)|([{U}])\b|([{l}])(?=\s*$|[).,:;\n]))"
# "B", "B)", "(B)", "B.", "B: wet palms" at the very start
_LEADING = r"^\s*\(?([{L}])(?:\)|\.|:|\s*$|\s*\n)"
# the whole answer is one letter with decoration: "**B**", "'B'"
_ALONE = r"^\W*([{L}])\W*$"


@dataclass(frozen=True, slots=True)
class Choice:
    """Extracts a multiple-choice letter from free text and compares it with ``expected`` (a letter).

    Looks, in order, for a marked answer ("The answer is (B).", "Answer: b"; the last one wins), a
    letter opening the answer ("B", "B)", "(B) wet palms", "B."), or a lone letter in decoration
    ("**B**"). No letter found scores 0 with detail ``no choice found``. ``choice:ABCDE`` sets the
    letters (default A-J).
    """

    letters: str = "ABCDEFGHIJ"
    name: str = "choice"

    def extract(self, answer: str) -> str | None:
        """The chosen letter (upper case), or ``None``."""
        upper, lower = self.letters, self.letters.lower()
        cls = upper + lower
        marked = re.findall(_MARKED.replace("{B}", cls).replace("{U}", upper).replace("{l}", lower), answer)
        if marked:
            return "".join(marked[-1]).upper()
        for pattern in (_LEADING, _ALONE):
            found = re.search(pattern.replace("{L}", cls), answer)
            if found:
                return found.group(1).upper()
        return None

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        wanted = {e.strip().strip("()").upper() for e in expected_strings(item)}
        got = self.extract(answer)
        if got is None:
            return Score(0.0, "no choice found")
        return Score(1.0 if got in wanted else 0.0, f"chose {got}")


_NUMBER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_FINAL = re.compile(r"####\s*(.+)")


def final_number(text: str) -> float | None:
    """The answer's final number: after ``####`` when present (GSM8K), else the last number in the text."""
    marked = _FINAL.search(text)
    scope = marked.group(1) if marked else text
    found = _NUMBER.findall(scope)
    if not found:
        return None
    raw = (found[0] if marked else found[-1]).replace(",", "").replace("$", "")
    try:
        return float(raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Number:
    """The answer's final number equals ``expected``'s within a tolerance.

    ``number`` (absolute tolerance 1e-6), ``number:0.01`` (absolute), ``number:1%`` (relative).
    ``expected`` may be a number or text whose final number counts (a GSM8K solution with ``#### 72``).
    """

    tolerance: float = 1e-6
    relative: bool = False
    name: str = "number"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        wanted = [final_number(e) for e in expected_strings(item)]
        targets = [w for w in wanted if w is not None]
        if not targets:
            raise ValueError(f"item {item.id!r}: 'expected' holds no number")
        got = final_number(answer)
        if got is None:
            return Score(0.0, "no number found")
        ok = any(
            math.isclose(
                got,
                t,
                rel_tol=self.tolerance if self.relative else 0.0,
                abs_tol=0.0 if self.relative else self.tolerance,
            )
            for t in targets
        )
        return Score(1.0 if ok else 0.0, f"got {got:g}")


def exact(args: str | None) -> Exact:
    """``exact``: normalized equality."""
    _no_args("exact", args)
    return Exact()


def contains(args: str | None) -> Contains:
    """``contains``: normalized containment."""
    _no_args("contains", args)
    return Contains()


def regex(args: str | None) -> Regex:
    """``regex`` (pattern from ``expected``) or ``regex:PATTERN``."""
    return Regex(_compile(args) if args else None)


def choice(args: str | None) -> Choice:
    """``choice`` or ``choice:ABCD`` (the option letters)."""
    if args is not None and not (args.isalpha() and args.isupper() and len(set(args)) == len(args)):
        raise ValueError(f"choice letters must be distinct upper-case letters, got {args!r}")
    return Choice(args) if args else Choice()


def number(args: str | None) -> Number:
    """``number``, ``number:0.01`` or ``number:1%``."""
    if not args:
        return Number()
    relative = args.endswith("%")
    try:
        value = float(args.rstrip("%"))
    except ValueError:
        raise ValueError(f"tolerance must be a number or a percentage, got {args!r}") from None
    if value < 0:
        raise ValueError("tolerance must be >= 0")
    return Number(value / 100 if relative else value, relative)


def _no_args(name: str, args: Any) -> None:
    if args:
        raise ValueError(f"{name} takes no arguments, got {args!r}")
