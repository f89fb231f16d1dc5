"""How relevant each unit is to the question: BM25 over stemmed words, smoothed over neighbours.

Relevant passages in long documents and transcripts run over several units, and the unit that
names the topic is rarely the only one that matters, so each unit's score is spread to its
neighbours with an exponential decay (``tau`` units) before units are ranked.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import numpy.typing as npt

# Question words that say what to do with the text, not what it is about.
QUESTION_WORDS = (
    "say", "said", "discuss", "discussed", "talk", "talked", "mention", "mentioned", "think", "thought",
    "summarize", "summarise", "decide", "decided", "agree", "agreed", "opinion", "what", "how", "why",
    "did", "does", "team", "group", "meeting",
)  # fmt: skip


logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


@functools.cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.cache
def stopwords() -> frozenset[str]:
    """English stopwords (NLTK's list, as bm25s ships it)."""
    from bm25s.tokenization import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def scores(texts: list[str], query: str, tau: float, window: int) -> npt.NDArray[np.float64]:
    """Smoothed BM25 relevance of each text to ``query`` (zeros when no query word occurs)."""
    import bm25s

    skip = [*stopwords(), *QUESTION_WORDS]
    tokens = bm25s.tokenize(texts, stopwords=skip, stemmer=_stemmer(), show_progress=False)
    terms = bm25s.tokenize([query], stopwords=skip, stemmer=_stemmer(), show_progress=False, return_ids=False)[0]
    terms = [t for t in terms if t in tokens.vocab]
    if not terms or not texts:
        return np.zeros(len(texts))
    index = bm25s.BM25()
    index.index(tokens, show_progress=False)
    raw = np.asarray(index.get_scores(terms), dtype=np.float64)
    kernel = np.exp(-np.abs(np.arange(-window, window + 1)) / tau)
    return np.convolve(raw, kernel, mode="same")
