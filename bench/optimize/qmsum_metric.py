"""The QMSum gold-span survival metric for long-context compression.

Context: the transcript as ``speaker: content`` lines; query: a specific query. An utterance of
the query's gold span survives when at least 60% of its distinctive content words (three letters
or more, not a stopword, in fewer than 5% of that meeting's utterances) are still in the
compressed text; utterances with fewer than three such words are not counted. Words are
lower-cased runs of letters, digits and apostrophes; punctuation never counts as a word.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from bm25s.tokenization import STOPWORDS_EN_PLUS

WORD = re.compile(r"[a-z0-9']+")
STOP = frozenset(STOPWORDS_EN_PLUS)
DATA = Path(__file__).parent / "data" / "qmsum_val.jsonl.gz"


def words(text: str) -> list[str]:
    """The words of ``text`` (lower case, no punctuation)."""
    return WORD.findall(text.lower())


@dataclass(frozen=True, slots=True)
class Case:
    """One meeting and one specific query with its gold utterance indices."""

    meeting: int
    context: str
    query: str
    gold: tuple[int, ...]
    distinctive: tuple[frozenset[str], ...]  # per utterance


def _distinctive(lines: list[str]) -> tuple[frozenset[str], ...]:
    sets = [frozenset(w for w in words(line) if sum(c.isalpha() for c in w) >= 3 and w not in STOP) for line in lines]
    df: Counter[str] = Counter(w for s in sets for w in s)
    limit = 0.05 * len(lines)
    return tuple(frozenset(w for w in s if df[w] < limit) for s in sets)


def cases(path: Path = DATA) -> Iterator[Case]:
    """Every (meeting, specific query) pair of a QMSum jsonl(.gz) file."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for m, line in enumerate(fh):
            row = orjson.loads(line)
            utterances = row["meeting_transcripts"]
            lines = [f"{u['speaker']}: {u['content']}" for u in utterances]
            distinctive = _distinctive([u["content"] for u in utterances])
            context = "\n".join(lines)
            for q in row["specific_query_list"]:
                gold: set[int] = set()
                for start, end in q["relevant_text_span"]:
                    gold.update(range(int(start), min(int(end), len(lines) - 1) + 1))
                yield Case(m, context, q["query"], tuple(sorted(gold)), distinctive)


def survival(case: Case, compressed: str) -> tuple[int, int]:
    """(gold utterances that survive, gold utterances counted)."""
    kept = set(words(compressed))
    survived = counted = 0
    for i in case.gold:
        d = case.distinctive[i]
        if len(d) < 3:
            continue
        counted += 1
        if sum(w in kept for w in d) >= 0.6 * len(d):
            survived += 1
    return survived, counted
