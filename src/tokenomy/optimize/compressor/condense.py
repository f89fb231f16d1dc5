"""Condensing one unit to its content words (the ``condensed`` method's token-level step)."""

from __future__ import annotations

import functools

from tokenomy.optimize.compressor.relevance import stopwords
from tokenomy.optimize.compressor.units import WORD

# Spoken fillers, hedges and transcript markers ({disfmarker}, {vocalsound}) that carry no content.
FILLERS = frozenset(
    [
        "uh",
        "um",
        "uhm",
        "hmm",
        "mm",
        "mmm",
        "mm-hmm",
        "yeah",
        "yep",
        "okay",
        "ok",
        "oh",
        "ah",
        "huh",
        "right",
        "so",
        "well",
        "like",
        "just",
        "actually",
        "really",
        "gonna",
        "know",
        "think",
        "mean",
        "sort",
        "kind",
        "thing",
        "things",
        "i'm",
        "that's",
        "it's",
        "don't",
        "we're",
        "there's",
        "they're",
        "you're",
        "disfmarker",
        "vocalsound",
        "nonvocalsound",
        "gap",
        "pause",
        "comment",
    ]
)


@functools.cache
def _dropped() -> frozenset[str]:
    return stopwords() | FILLERS


def condense_unit(text: str) -> list[str]:
    """The unit's content words in order: no stopwords, fillers, single letters or repeats."""
    dropped = _dropped()
    seen: set[str] = set()
    out: list[str] = []
    for word in WORD.findall(text):
        lower = word.lower()
        if lower in dropped or len(lower) < 2 or lower in seen:
            continue
        seen.add(lower)
        out.append(word)
    return out
