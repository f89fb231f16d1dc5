"""Lossless: whitespace the model cannot read differently, outside code.

Only two rewrites, and never inside fenced code blocks (```` ``` ```` or ``~~~``) or tool results
(which may be file contents where every byte counts): trailing spaces and tabs at line ends go, and
runs of three or more line breaks become one blank line. Indentation and spaces inside a line
(tables, alignment) are kept.
"""

from __future__ import annotations

import re
from typing import Any

from tokenomy.optimize.messages import map_texts, role

name = "whitespace"

_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.MULTILINE)
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")


def normalize(text: str) -> str:
    """``text`` with trailing line whitespace and extra blank lines removed outside code fences."""
    if not (" \n" in text or "\t\n" in text or "\n\n\n" in text or text.endswith((" ", "\t"))):
        return text
    pieces = _split_fences(text)
    return "".join(piece if code else _BLANKS.sub("\n\n", _TRAILING.sub("", piece)) for piece, code in pieces)


def _split_fences(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, inside a code fence) in order; an unclosed fence runs to the end."""
    pieces: list[tuple[str, bool]] = []
    pos = 0
    inside: str | None = None
    start = 0
    for match in _FENCE.finditer(text):
        marker = match.group(1)
        if inside is None:
            pieces.append((text[pos : match.start()], False))
            start, inside = match.start(), marker
        elif marker == inside:
            end = text.find("\n", match.end())
            end = len(text) if end < 0 else end
            pieces.append((text[start:end], True))
            pos, inside = end, None
    if inside is not None:
        pieces.append((text[start:], True))
    else:
        pieces.append((text[pos:], False))
    return pieces


def apply(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body with whitespace normalized in non-tool messages, or ``None`` if unchanged."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    out = [message if role(message) == "tool" else map_texts(message, normalize) for message in messages]
    changed = any(a is not b for a, b in zip(out, messages, strict=True))
    return {**body, "messages": out} if changed else None
