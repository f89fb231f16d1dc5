"""What the verifier reads about a (query, stored question) pair besides the model scores.

Generic lexical facts, no word lists drawn from evaluation data: the parts of the second check of
:mod:`~tokenomy.cache.semantic.verify` (numbers, content words, word roles, subject), negation,
content-word overlap and length ratios. :func:`gate` is the hard part: a pair whose numbers
differ, whose words swap roles (``EUR to USD`` / ``USD to EUR``) or where only one side negates
is never the same question, whatever the models say.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.verify import _conflict, same_question, signature

LEXICAL = (
    "same_question",
    "numbers_equal",
    "words_equal",
    "subject_mismatch",
    "jaccard",
    "unmatched",
    "unmatched_max",
    "word_ratio",
    "char_ratio",
)
"""Names of :func:`lexical`'s values, in order."""

_NEGATION = re.compile(r"\b(?:not|no|never|without|none|nobody|nothing|cannot|can't|won't|isn't|aren't|don't|"
                       r"doesn't|didn't|wasn't|weren't|shouldn't|wouldn't|couldn't|neither|nor)\b|n't\b",
                       re.IGNORECASE)  # fmt: skip


def _negated(text: str) -> bool:
    return bool(_NEGATION.search(text.replace("\u2019", "'")))


_CONTRACTIONS = ((r"n't\b", " not"), (r"'s\b", " is"), (r"'re\b", " are"), (r"'m\b", " am"), (r"'ll\b", " will"),
                 (r"'ve\b", " have"), (r"'d\b", " would"))  # fmt: skip


def normalized(text: str) -> str:
    """Lower case, contractions spelled out, punctuation dropped, spaces collapsed."""
    out = text.lower().replace("\u2019", "'")
    for pattern, replacement in _CONTRACTIONS:
        out = re.sub(pattern, replacement, out)
    return " ".join(re.findall(r"\w+", out))


def gate(query: str, stored: str) -> bool:
    """False when the pair certainly asks different things: numbers, roles or negation differ."""
    if query == stored:
        return True
    a, b = signature(query), signature(stored)
    if a.numbers != b.numbers or _negated(query) != _negated(stored):
        return False
    return not _conflict(a.roles, b.roles)


def lexical(query: str, stored: str) -> list[float]:
    """The values named by :data:`LEXICAL` for a pair."""
    a, b = signature(query), signature(stored)
    union = a.words | b.words
    only_a, only_b = len(a.words - b.words), len(b.words - a.words)
    wa, wb = max(1, len(query.split())), max(1, len(stored.split()))
    ca, cb = max(1, len(query)), max(1, len(stored))
    return [
        float(same_question(query, stored)),
        float(a.numbers == b.numbers),
        float(a.words == b.words),
        float(a.subject is not None and b.subject is not None and a.subject != b.subject),
        len(a.words & b.words) / len(union) if union else 1.0,
        float(only_a + only_b),
        float(max(only_a, only_b)),
        min(wa, wb) / max(wa, wb),
        min(ca, cb) / max(ca, cb),
    ]


FEATURES = ("cosine", "cross_encoder", *LEXICAL)
"""The verifier's inputs, in order: MiniLM cosine, cross-encoder logit, then :data:`LEXICAL`."""


def features(query: str, stored: str, cosine: float, cross_encoder: float) -> npt.NDArray[np.float64]:
    """One row of :data:`FEATURES`."""
    return np.array([cosine, cross_encoder, *lexical(query, stored)], dtype=np.float64)
