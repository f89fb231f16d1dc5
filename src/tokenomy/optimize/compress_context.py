"""Query-aware context compression: long texts shrink to what matters for the question.

Which text is compressed:

- a text content part marked ``"compress": true`` (the mark is removed before the request goes
  upstream); when any part is marked, only marked parts are compressed;
- otherwise every user text of at least ``min_tokens`` (estimated at four characters a token).
  When that text is the last user message itself, its last paragraph (after the last blank line)
  is taken as the question and kept word for word. System messages hold instructions and a
  cacheable prefix, so they are compressed only when marked.

The question is the last user message (its unmarked parts when some are marked; its last
paragraph in the case above). The compressor is :mod:`tokenomy.optimize.compressor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenomy.optimize.messages import role, text_of

if TYPE_CHECKING:
    from tokenomy.optimize.compressor import Method

name = "compress"
MARK = "compress"


@dataclass(frozen=True, slots=True)
class Compression:
    """The outcome: a new body (``None``: unchanged) and how many texts were compressed."""

    body: dict[str, Any] | None
    texts: int = 0


def strip_marks(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body without compression marks on content parts, or ``None`` if it had none."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_marked_parts(m) for m in messages):
        return None
    out = []
    for message in messages:
        if _marked_parts(message):
            parts = [
                {k: v for k, v in p.items() if k != MARK} if isinstance(p, dict) else p for p in message["content"]
            ]
            message = {**message, "content": parts}
        out.append(message)
    return {**body, "messages": out}


def apply(body: dict[str, Any], ratio: float, method: Method, min_tokens: int) -> Compression:
    """Compress the marked (or long) texts of a chat body about ``ratio`` times."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return Compression(None)
    last_user = max((i for i, m in enumerate(messages) if role(m) == "user"), default=None)
    if last_user is None:
        return Compression(None)
    marked = any(_marked_parts(m) for m in messages)
    question = _question(messages[last_user]) if marked else text_of(messages[last_user])
    out: list[Any] = []
    count = 0
    for index, message in enumerate(messages):
        if marked:
            new, n = _compress_marked(message, question, ratio, method)
        elif role(message) == "user":  # instructions (system) stay whole, and a stable prefix stays cacheable
            new, n = _compress_long(message, index == last_user, question, ratio, method, min_tokens)
        else:
            new, n = message, 0
        out.append(new)
        count += n
    if not count:
        return Compression(strip_marks(body))
    return Compression({**body, "messages": out}, count)


def _question(message: Any) -> str:
    """The last user message's unmarked text (its whole text when every part is marked)."""
    content = message.get("content")
    if isinstance(content, list):
        rest = [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get(MARK) is not True and isinstance(p.get("text"), str)
        ]
        if rest:
            return "\n\n".join(rest)
    return text_of(message)


def _marked_parts(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(isinstance(p, dict) and p.get(MARK) is True for p in content)


def _compress_marked(message: Any, question: str, ratio: float, method: Method) -> tuple[Any, int]:
    if not _marked_parts(message):
        return message, 0
    parts: list[Any] = []
    n = 0
    for part in message["content"]:
        if isinstance(part, dict) and part.get(MARK) is True:
            part = {k: v for k, v in part.items() if k != MARK}
            if isinstance(part.get("text"), str):
                part["text"] = _kept(part["text"], question, ratio, method)
                n += 1
        parts.append(part)
    return {**message, "content": parts}, n


def _compress_long(
    message: Any, is_last_user: bool, question: str, ratio: float, method: Method, min_tokens: int
) -> tuple[Any, int]:
    content = message.get("content")
    if isinstance(content, str):
        new = _shrink(content, is_last_user, question, ratio, method, min_tokens)
        return (message, 0) if new is None else ({**message, "content": new}, 1)
    if not isinstance(content, list):
        return message, 0
    parts: list[Any] = []
    n = 0
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            new = _shrink(part["text"], is_last_user, question, ratio, method, min_tokens)
            if new is not None:
                part, n = {**part, "text": new}, n + 1
        parts.append(part)
    return ({**message, "content": parts}, n) if n else (message, 0)


def _shrink(text: str, is_last_user: bool, question: str, ratio: float, method: Method, min_tokens: int) -> str | None:
    if len(text) < 4 * min_tokens:
        return None
    if not is_last_user:
        return _kept(text, question, ratio, method)
    context, sep, tail = text.rstrip().rpartition("\n\n")
    if not sep or len(context) < 4 * min_tokens:
        return None
    return _kept(context, tail, ratio, method) + "\n\n" + tail


class NothingKept(ValueError):
    """The budget fit no unit of a text: compressing it would send nothing."""


def _kept(text: str, question: str, ratio: float, method: Method) -> str:
    # Imported at the first compression: the compressor brings numpy and bm25s, which a gateway
    # whose requests ask for no compression should not hold in memory.
    from tokenomy.optimize.compressor import compress

    result = compress(text, question, ratio, method)
    if result.units_kept == 0:
        raise NothingKept(f"no part of a {result.original_words}-word text fits {ratio:g}x; left unchanged")
    return result.text
