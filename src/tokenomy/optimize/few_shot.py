"""Few-shot selection: of many demonstrations, keep the ``k`` most similar to the current input.

Demonstrations are recognised in three forms, in this order:

1. messages named ``example_user`` / ``example_assistant`` (OpenAI's convention for examples);
2. blank-line-separated blocks of one text that start with the same label (``Question:``, ``Q:``,
   ``Input:`` ...), three or more of them, in a system or user message;
3. user/assistant pairs before the last user message (only when the request has no tool calls;
   turning this transform on for a task says its earlier turns are examples, not a conversation).

Similarity is the cosine of all-MiniLM-L6-v2 embeddings (the embedded model) between each
demonstration and the last user message; the kept ones stay in their original order.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tokenomy.optimize.messages import map_texts, role, text_of

name = "few_shot"
Embed = Callable[[list[str]], Awaitable[Any]]
_LABEL = re.compile(r"^\s*([A-Za-z][\w ]{0,24}):")
MIN_DEMOS = 3


@dataclass(frozen=True, slots=True)
class Selected:
    """The outcome: a new body (``None``: unchanged) and how many demonstrations were kept of how many."""

    body: dict[str, Any] | None
    kept: int = 0
    found: int = 0


def labelled_blocks(text: str) -> tuple[list[str], list[int]] | None:
    """The text's blocks and the indexes of its demonstrations (blocks sharing one leading label)."""
    blocks = text.split("\n\n")
    labels = [_LABEL.match(b) for b in blocks]
    counts: dict[str, int] = {}
    for m in labels:
        if m is not None:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    if not counts:
        return None
    label, n = max(counts.items(), key=lambda kv: kv[1])
    if n < MIN_DEMOS:
        return None
    return blocks, [i for i, m in enumerate(labels) if m is not None and m.group(1) == label]


async def apply(body: dict[str, Any], k: int, embed: Embed) -> Selected:
    """Keep the ``k`` demonstrations most similar to the last user message."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return Selected(None)
    last_user = max((i for i, m in enumerate(messages) if role(m) == "user"), default=None)
    if last_user is None:
        return Selected(None)
    named = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("name") in _EXAMPLE_NAMES]
    if len(named) >= 2 * MIN_DEMOS - 1:
        return await _message_demos(body, messages, _pairs(messages, named), last_user, k, embed)
    for index, message in enumerate(messages):
        if role(message) not in ("system", "developer", "user"):
            continue
        for piece in _pieces(message):
            found = labelled_blocks(piece)
            if found is not None and len(found[1]) > k:
                return await _text_demos(body, messages, index, piece, last_user, k, embed)
    if any(isinstance(m, dict) and (m.get("tool_calls") or role(m) == "tool") for m in messages):
        return Selected(None)
    pairs = [
        (i, i + 1)
        for i in range(last_user)
        if role(messages[i]) == "user" and i + 1 < last_user and role(messages[i + 1]) == "assistant"
    ]
    if len(pairs) >= MIN_DEMOS:
        return await _message_demos(body, messages, pairs, last_user, k, embed)
    return Selected(None)


_EXAMPLE_NAMES = frozenset({"example_user", "example_assistant"})


def _pairs(messages: list[Any], named: list[int]) -> list[tuple[int, int]]:
    """Named example messages grouped as (user example, the assistant example after it)."""
    pairs: list[tuple[int, int]] = []
    for i in named:
        if messages[i].get("name") == "example_user":
            end = i + 1 if i + 1 in named and messages[i + 1].get("name") == "example_assistant" else i
            pairs.append((i, end))
    return pairs


async def _top(texts: list[str], query: str, k: int, embed: Embed) -> list[int]:
    import numpy as np  # here, not at the top: a gateway that selects no examples does not hold numpy

    vectors = np.asarray(await embed([*texts, query]), dtype=np.float32)
    similarity = vectors[:-1] @ vectors[-1]
    return sorted(int(i) for i in np.argsort(-similarity, kind="stable")[:k])


async def _message_demos(
    body: dict[str, Any], messages: list[Any], pairs: list[tuple[int, int]], last_user: int, k: int, embed: Embed
) -> Selected:
    if len(pairs) <= k:
        return Selected(None)
    texts = ["\n".join(text_of(messages[j]) for j in range(a, b + 1)) for a, b in pairs]
    keep = await _top(texts, text_of(messages[last_user]), k, embed)
    dropped = {j for n, (a, b) in enumerate(pairs) if n not in keep for j in range(a, b + 1)}
    out = [m for i, m in enumerate(messages) if i not in dropped]
    return Selected({**body, "messages": out}, len(keep), len(pairs))


async def _text_demos(
    body: dict[str, Any], messages: list[Any], index: int, piece: str, last_user: int, k: int, embed: Embed
) -> Selected:
    found = labelled_blocks(piece)
    assert found is not None
    blocks, demos = found
    after = blocks[demos[-1] + 1 :]
    query = "\n\n".join(after) if index == last_user and after else text_of(messages[last_user])
    keep = await _top([blocks[i] for i in demos], query, k, embed)
    dropped = {demos[n] for n in range(len(demos)) if n not in keep}
    shorter = "\n\n".join(b for i, b in enumerate(blocks) if i not in dropped)
    new = map_texts(messages[index], lambda text: shorter if text == piece else text)
    out = [new if i == index else m for i, m in enumerate(messages)]
    return Selected({**body, "messages": out}, len(keep), len(demos))


def _pieces(message: Any) -> list[str]:
    """The message's text pieces: its string content, or each text part."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []
