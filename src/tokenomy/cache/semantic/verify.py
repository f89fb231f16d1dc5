"""The second check of a semantic hit: the two questions must ask about the same things.

Sentence embeddings score ``convert USD to EUR`` / ``convert EUR to USD`` or ``weather in Paris``
/ ``weather in London`` as near duplicates, so a similarity threshold alone cannot reach 99 %
precision (docs/semantic-cache.md). :func:`same_question` compares what the embedding blurs:

- **numbers**: digits and number words, as a multiset (``2 apples`` ≠ ``3 apples``, ``two`` = ``2``);
- **content words**: every word that is not a function word or a generic request word (``how``,
  ``best``, ``tips``, ...) must occur on both sides, compared case-insensitively after light
  stemming. Names, products, places, attributes, negations and time words are content words;
- **direction**: a word before ``to``/``into`` on one side may not follow it on the other
  (``Markdown to HTML`` ≠ ``HTML to Markdown``), and likewise for ``from``.

It is deliberately strict: a paraphrase that swaps a content word for a synonym is a miss (the
exact tier and the upstream answer it), never a wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


# Function words: articles, pronouns, auxiliaries, plain prepositions and conjunctions. Words that
# change an answer (not, no, before, after, up, down, more, less, only, now, ...) are not here.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP = _words(
    """a an the this that these those it its it's i me my we our you your he she they them their his her
    is are was were be been being am do does did doing have has had having will would shall should can could
    may might must of in on at for with by about to into towards from as and or but if so than then there here
    what how whom whose any some such very just also too via per over"""
)

# Generic request words: they frame a request without changing its topic.
_FRAMING = _words(
    """please tell show give get find search look list explain explained explanation describe
    guide tutorial tip advice help way step example best top good recommend recommendation
    learn know need want info information overview introduction intro"""
)

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
_NUMBER_WORDS = {w: i for i, w in enumerate([*_ONES.split(" "), "seventeen", "eighteen", "nineteen", "twenty"])}
_NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80})
_NUMBER_WORDS.update({"ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9})
_NUMBER_WORDS.update({"first": 1, "second": 2, "third": 3, "dozen": 12})
_SCALE = {"k": 1000, "m": 10**6, "bn": 10**9}

_TOKEN = re.compile(
    r"(?:[^\W\d_]\.){2,}|\d+(?:[.,]\d+)*(?:st|nd|rd|th|k|m|bn)?(?=\W|$)|[^\W\d_]+(?:['\u2019][^\W\d_]+)?|\d+|%",
    re.IGNORECASE,
)
# Markers whose neighbours have roles: "X to Y", "from X", "X than Y", "X over Y".
_DIRECTION = {"to": "to", "into": "to", "towards": "to", "from": "from", "than": "than", "over": "over"}
# The objects of these must agree exactly ("to" is also the infinitive marker, so it gets the looser rule).
_STRICT_ROLES = frozenset({">from", ">than", ">over"})
_AUXILIARY = _words("is are was were do does did has have had will would can could should must")


@dataclass(frozen=True, slots=True)
class Signature:
    """What a question is about: its numbers, content words, word roles and subject."""

    numbers: tuple[str, ...]
    words: frozenset[str]
    roles: frozenset[tuple[str, str]]  # (word, "to>") for "word to ...", (word, ">to") for "... to word"
    subject: frozenset[str] | None  # content words before the first auxiliary verb, if any


def _stem(word: str) -> str:
    """A light English stemmer: plural, -ing, -ed, final -e (consistent, not linguistic)."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def _number(token: str) -> str | None:
    """The canonical value of a numeric token, or ``None``."""
    low = token.lower()
    if low in _NUMBER_WORDS:
        return str(_NUMBER_WORDS[low])
    match = re.fullmatch(r"(\d+(?:[.,]\d+)*)(st|nd|rd|th|k|m|bn)?", low)
    if match is None:
        return None
    digits, suffix = match.groups()
    if "," in digits and re.fullmatch(r"\d{1,3}(,\d{3})+", digits):
        digits = digits.replace(",", "")
    digits = digits.replace(",", ".")
    try:
        value = float(digits) * _SCALE.get(suffix or "", 1)
    except ValueError:  # pragma: no cover - the pattern only matches numbers
        return digits
    return f"{value:g}"


def _tokens(text: str) -> list[str]:
    """Numbers (canonical), content-word stems, ``\0marker`` for direction markers and ``\0aux``."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        value = _number(token)
        if value is not None:
            out.append(value)
            continue
        low = token.lower().replace("\u2019", "'")
        if "." in low:  # an acronym: U.S. -> us
            low = low.replace(".", "")
        if low.endswith("n't"):  # doesn't -> does not
            out.extend(_tokens(low[:-3]))
            out.append("not")
            continue
        if low in _DIRECTION:
            out.append("\0" + _DIRECTION[low])
            continue
        if low in _AUXILIARY:
            out.append("\0aux")
            continue
        if low == "%":
            low = "percent"
        stem = _stem(low)
        if low in _STOP or low in _FRAMING or stem in _FRAMING:
            continue
        out.append(stem)
    return out


@lru_cache(maxsize=4096)
def signature(text: str) -> Signature:
    """The :class:`Signature` of a question (cached: the same texts come back often)."""
    seq = _tokens(text)
    content = [t for t in seq if not t.startswith("\0")]
    numbers = tuple(sorted(t for t in content if t[:1].isdigit()))
    roles: set[tuple[str, str]] = set()
    for i, item in enumerate(seq):
        if not item.startswith("\0") or item == "\0aux":
            continue
        marker = item[1:]
        if i > 0 and not seq[i - 1].startswith("\0"):
            roles.add((seq[i - 1], marker + ">"))
        if i + 1 < len(seq) and not seq[i + 1].startswith("\0"):
            roles.add((seq[i + 1], ">" + marker))
    subject = None
    if "\0aux" in seq:
        subject = frozenset(t for t in seq[: seq.index("\0aux")] if not t.startswith("\0"))
    return Signature(numbers, frozenset(content), frozenset(roles), subject)


def _by_word(roles: frozenset[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for word, role in roles:
        out.setdefault(word, set()).add(role)
    return out


def _conflict(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> bool:
    """Whether a word plays different roles: "X to Y" / "Y to X", "from X" / "to X", "than X" / "than Y"."""
    if {r for r in a if r[1] in _STRICT_ROLES} != {r for r in b if r[1] in _STRICT_ROLES}:
        return True
    ra, rb = _by_word(a), _by_word(b)
    for word in ra.keys() & rb.keys():
        x, y = ra[word], rb[word]
        if any(r[1:] + ">" in y for r in x if r[0] == ">"):
            return True  # after the marker here, before it there
        if any(">" + r[:-1] in y for r in x if r[-1] == ">"):
            return True  # before the marker here, after it there
        objects_x, objects_y = {r for r in x if r[0] == ">"}, {r for r in y if r[0] == ">"}
        if objects_x and objects_y and not objects_x & objects_y:
            return True  # the object of different markers: "from X" / "to X"
    return False


def same_question(a: str, b: str) -> bool:
    """Whether two similar questions also agree on numbers, content words, roles and subject."""
    if a == b:
        return True
    sa, sb = signature(a), signature(b)
    if sa.numbers != sb.numbers or sa.words != sb.words:
        return False
    if sa.subject is not None and sb.subject is not None and sa.subject != sb.subject:
        return False  # "a man carries a dog" / "a dog carries a man"
    return not _conflict(sa.roles, sb.roles)
