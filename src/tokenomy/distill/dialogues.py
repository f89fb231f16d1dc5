"""Free-text training and test examples for a generative student: a conversation and the answer it should get.

JSONL lines ``{"messages": [...], "answer": "..."}`` (or ``"label"``; or ``"text"`` for a single
user turn). The student sees the conversation exactly as a chat request would carry it and
learns to answer with the text of ``answer``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenomy.distill.data import DistillDataError, text_of


@dataclass(frozen=True, slots=True)
class Dialogues:
    """Conversations (OpenAI chat messages) and their answers, in file order."""

    messages: list[list[dict[str, Any]]]
    answers: list[str]

    def __len__(self) -> int:
        return len(self.answers)


def messages_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation of a data line: its ``messages``, or one user turn holding ``text``."""
    if "text" in row:
        return [{"role": "user", "content": row["text"] if isinstance(row["text"], str) else ""}]
    messages = row.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def load_dialogues(path: Path) -> Dialogues:
    """Read a JSONL file (``.gz`` too); every line needs user text and a non-empty answer."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise DistillDataError(f"{path}: {exc.strerror or exc}") from None
    conversations: list[list[dict[str, Any]]] = []
    answers: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise DistillDataError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(row, dict):
            raise DistillDataError(f"{path}:{number}: not a JSON object")
        if not text_of(row).strip():
            raise DistillDataError(f'{path}:{number}: empty text (give "text" or user "messages")')
        answer = row.get("answer", row.get("label"))
        if not isinstance(answer, str | int | float) or not str(answer).strip():
            raise DistillDataError(f'{path}:{number}: no "answer" (or "label")')
        conversations.append(messages_of(row))
        answers.append(str(answer).strip())
    if not answers:
        raise DistillDataError(f"{path}: no examples")
    return Dialogues(conversations, answers)
