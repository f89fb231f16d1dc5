"""Query-aware compression of a long context (documents, transcripts, logs) to a target ratio.

Two methods, both fast enough for the request path (no model call):

- ``extractive``: whole units (lines, or sentences of long lines) are kept in their original order,
  the most relevant first (:mod:`.relevance`) until the word budget is spent. Readable as is.
- ``condensed`` (the default): the same ranking, but each kept unit keeps only its content words
  (stopwords, spoken fillers and repeats within the unit go, like LLMLingua's dropped tokens), and
  transcripts' speaker labels become initials explained on a first ``Speakers:`` line. About twice
  as many units fit the same budget; the text reads telegraphically.

The budget is the context's word count divided by the ratio. No learned compressor with weights
ships on PyPI (LLMLingua's models live on a model hub), hence these lexical methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tokenomy.optimize.compressor.condense import condense_unit
from tokenomy.optimize.compressor.relevance import scores
from tokenomy.optimize.compressor.units import Unit, abbreviations, count_words, split_units

Method = Literal["condensed", "extractive"]
METHODS: tuple[str, ...] = ("condensed", "extractive")
# Chosen by 5-fold cross-validation over meetings of the public QMSum split (docs/benchmarks.md).
TAU = 6.0
WINDOW = 10
MIN_CONTENT_WORDS = 3


@dataclass(frozen=True, slots=True)
class Compressed:
    """A compressed context and its size before and after (in words)."""

    text: str
    original_words: int
    compressed_words: int
    units_kept: int
    units: int


def compress(
    context: str,
    query: str,
    ratio: float,
    method: Method = "condensed",
    *,
    tau: float = TAU,
    window: int = WINDOW,
    min_words: int = MIN_CONTENT_WORDS,
) -> Compressed:
    """``context`` shrunk about ``ratio`` times (in words), keeping what is most relevant to ``query``."""
    if ratio <= 1:
        raise ValueError(f"the compression ratio must be above 1 (got {ratio})")
    units, transcript = split_units(context)
    total = count_words(context)
    if not units:
        return Compressed(context, total, total, 0, 0)
    budget = total / ratio
    relevance = scores([f"{u.speaker}: {u.text}" if u.speaker else u.text for u in units], query, tau, window)
    if method == "extractive":
        rendered = [f"{u.speaker}: {u.text}" if u.speaker else u.text for u in units]
        legend = ""
        minimum = 1
    else:
        short = abbreviations([u.speaker for u in units]) if transcript else {}
        legend = "Speakers: " + "; ".join(f"{v}={k}" for k, v in short.items()) if short else ""
        if count_words(legend) > 0.1 * budget:  # too many speakers to explain in a small budget
            short, legend = {}, ""
        rendered = [_condensed(u, short) for u in units]
        minimum = min_words
        budget -= count_words(legend)
    costs = [count_words(r) for r in rendered]
    content = [count_words(u.text) if method == "extractive" else count_words(r) - _label_words(u, rendered[i])
               for i, (u, r) in enumerate(zip(units, rendered, strict=True))]  # fmt: skip
    keep = np.zeros(len(units), dtype=bool)
    used = 0.0
    for i in np.argsort(-relevance, kind="stable"):
        if content[i] < minimum or used + costs[i] > budget:
            continue
        keep[i] = True
        used += costs[i]
        if used >= 0.99 * budget:
            break
    lines = [legend] if legend and keep.any() else []
    lines.extend(r for r, k in zip(rendered, keep, strict=True) if k)
    text = "\n".join(lines)
    return Compressed(text, total, count_words(text), int(keep.sum()), len(units))


def _condensed(unit: Unit, short: dict[str, str]) -> str:
    words = condense_unit(unit.text)
    label = short.get(unit.speaker, unit.speaker)
    return f"{label}: {' '.join(words)}" if label else " ".join(words)


def _label_words(unit: Unit, rendered: str) -> int:
    return count_words(rendered.split(":", 1)[0]) if unit.speaker else 0
