"""Preambles: long prompt openings shared by many training prompts (few-shot examples, instructions).

A router that embeds whole prompts sees mostly the preamble when one is long (MiniLM reads the
first 256 tokens), so it learns which *task* a prompt belongs to, not which *prompt* it is.
:func:`learn_preambles` finds the openings shared by many training prompts; at serving time
:meth:`Preambles.split` strips the longest one a prompt starts with, so the features see the
part that differs (the question), plus which preamble it was (a task signal). The same object,
stored in the router file, does both, so training and serving strip alike.

Learning: sort the distinct prompts; the common prefix of each adjacent pair, cut back to its
last line break, is a candidate; a candidate is kept when at least ``min_support`` prompts start
with it (a contiguous range of the sorted list, found by bisection) and it is at least
``min_chars`` long. At most ``max_preambles`` are kept (the most shared first).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_CHARS = 64
MAX_PREAMBLES = 64


def _support(ordered: list[str], prefix: str) -> int:
    """How many strings of the sorted list start with ``prefix``."""
    lo = bisect.bisect_left(ordered, prefix)
    hi = bisect.bisect_left(ordered, prefix + "\U0010ffff")
    return hi - lo


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix (bisection over slice comparisons: C speed on long prompts)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def default_min_support(rows: int) -> int:
    """Half a percent of the rows, at least 8 and at most 200."""
    return max(8, min(200, math.ceil(0.005 * rows)))


def learn_preambles(
    texts: Sequence[str],
    min_support: int | None = None,
    min_chars: int = MIN_CHARS,
    max_preambles: int = MAX_PREAMBLES,
) -> Preambles:
    """The openings (ending at a line break) that at least ``min_support`` of ``texts`` share."""
    ordered = sorted(set(texts))
    need = default_min_support(len(texts)) if min_support is None else min_support
    candidates: set[str] = set()
    for a, b in itertools.pairwise(ordered):
        n = _common_prefix(a, b)
        cut = a.rfind("\n", 0, n) + 1  # keep whole lines; 0 when no line break is shared
        if cut >= min_chars and cut < len(a) and cut < len(b):
            candidates.add(a[:cut])
    kept = [(c, s) for c in candidates if (s := _support(ordered, c)) >= need]
    # a candidate inside a longer kept one with the same support adds nothing
    kept.sort(key=lambda cs: (-cs[1], -len(cs[0])))
    chosen: list[str] = []
    seen: list[tuple[str, int]] = []
    for text, support in kept:
        if any(longer.startswith(text) and s == support for longer, s in seen):
            continue
        seen.append((text, support))
        chosen.append(text)
        if len(chosen) >= max_preambles:
            break
    return Preambles(chosen)


@dataclass(slots=True)
class Preambles:
    """Known preambles; :meth:`split` finds the longest one a prompt starts with."""

    texts: list[str]
    _by_length: list[tuple[int, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_length = sorted(((i, t) for i, t in enumerate(self.texts)), key=lambda it: -len(it[1]))

    @property
    def groups(self) -> int:
        """Number of group ids: one per preamble plus 0 for "none"."""
        return len(self.texts) + 1

    def split(self, text: str) -> tuple[int, str]:
        """``(group, rest)``: group ``i + 1`` for preamble ``i`` (0 for none) and the text after it."""
        for index, preamble in self._by_length:
            if text.startswith(preamble) and len(text) > len(preamble):
                return index + 1, text[len(preamble) :]
        return 0, text

    def label(self, group: int) -> str:
        """A short human label of a group, for reports."""
        if group == 0:
            return "no shared preamble"
        head = " ".join(self.texts[group - 1].split())[:40]
        return f"preamble {group} ({head}…)"
