"""Condensing one unit to its content words (the ``condensed`` method's token-level step)."""

from __future__ import annotations

import functools
import re

from tokenomy.optimize.compressor.relevance import stopwords

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


# Negations carry meaning ("not approved"); they stay although they are stopwords.
NEGATIONS = frozenset({"no", "not", "nor", "never", "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't",
                       "weren't", "won't", "can't", "cannot", "couldn't", "shouldn't", "wouldn't", "haven't",
                       "hasn't", "hadn't"})  # fmt: skip


@functools.cache
def _dropped() -> frozenset[str]:
    return (stopwords() | FILLERS) - NEGATIONS


# A word with its inner punctuation kept, so numbers, codes and addresses survive whole
# (``3.5``, ``44-871``, ``2024-03-01``, ``a@b.com``); punctuation around words goes.
_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9'._%/@:+,-]*[A-Za-z0-9%])?")


def condense_unit(text: str) -> list[str]:
    """The unit's content words in order: no stopwords, fillers, single letters or repeats."""
    dropped = _dropped()
    seen: set[str] = set()
    out: list[str] = []
    for word in _TOKEN.findall(text):
        lower = word.lower()
        if lower in dropped or (len(lower) < 2 and not lower.isdigit()) or lower in seen:
            continue
        seen.add(lower)
        out.append(word)
    return out
