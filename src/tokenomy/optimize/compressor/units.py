"""Cutting a long context into units (lines, or sentences of long lines) and their speaker labels."""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD = re.compile(r"[A-Za-z0-9']+")
_LABEL = re.compile(r"^([A-Z][\w .'-]{0,40}):\s+(.*)$", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
LONG_LINE_WORDS = 60
MAX_SPEAKERS = 40


@dataclass(frozen=True, slots=True)
class Unit:
    """One line or sentence; ``speaker`` is its ``Name:`` label in a transcript-like context."""

    speaker: str
    text: str


def count_words(text: str) -> int:
    """Words as the compressor budgets them: runs of letters, digits and apostrophes."""
    return len(WORD.findall(text))


def split_units(context: str) -> tuple[list[Unit], bool]:
    """The context's units and whether it reads as a transcript (most lines carry a ``Name:`` label)."""
    lines = [line for line in context.splitlines() if line.strip()]
    labelled = [_LABEL.match(line) for line in lines]
    speakers = {m.group(1) for m in labelled if m is not None}
    transcript = (
        len(lines) >= 4
        and sum(m is not None for m in labelled) >= 0.6 * len(lines)
        and len(speakers) <= max(2, min(MAX_SPEAKERS, len(lines) // 4))  # labels that repeat: speakers
    )
    units: list[Unit] = []
    for line, match in zip(lines, labelled, strict=True):
        speaker, text = (match.group(1), match.group(2)) if transcript and match is not None else ("", line)
        if not transcript and count_words(text) > LONG_LINE_WORDS:  # a transcript's unit is the utterance
            units.extend(Unit(speaker, s) for s in _SENTENCE_END.split(text) if s.strip())
        else:
            units.append(Unit(speaker, text))
    return units, transcript


def abbreviations(speakers: list[str]) -> dict[str, str]:
    """Short, unique labels for speakers: initials (``Project Manager`` -> ``PM``), numbered on a clash."""
    short: dict[str, str] = {}
    taken: set[str] = set()
    for name in dict.fromkeys(s for s in speakers if s):
        base = "".join(w[0] for w in name.split() if w[0].isalnum()).upper() or "S"
        label, n = base, 2
        while label in taken:
            label, n = f"{base}{n}", n + 1
        taken.add(label)
        short[name] = label
    return short
