"""Free-text training and test examples for a generative student: a conversation and the answer it should get.

JSONL lines ``{"messages": [...], "answer": "..."}`` (or ``"label"``; or ``"text"`` for a single
user turn). The student sees the conversation exactly as a chat request would carry it and
learns to answer with the text of ``answer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenomy.distill.data import DistillDataError, read_rows, text_of

if TYPE_CHECKING:
    from tokenomy.config.models import GatewayConfig


@dataclass(frozen=True, slots=True)
class Dialogues:
    """Conversations (OpenAI chat messages) and their answers, in file order."""

    messages: list[list[dict[str, Any]]]
    answers: list[str]

    def __len__(self) -> int:
        return len(self.answers)


def messages_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation of a data line (its ``messages``, or one user turn holding ``text``), each
    message as ``{"role", "content": str}`` (text parts joined), as the gateway hands it to the model."""
    if "text" in row:
        return [{"role": "user", "content": row["text"] if isinstance(row["text"], str) else ""}]
    messages = row.get("messages")
    out = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and isinstance(message.get("role"), str):
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            out.append({"role": message["role"], "content": content if isinstance(content, str) else ""})
    return out


def load_dialogues(path: Path) -> Dialogues:
    """Read a JSONL file (``.gz`` too); every line needs user text and a non-empty answer."""
    conversations: list[list[dict[str, Any]]] = []
    answers: list[str] = []
    for number, row in read_rows(path):
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


def ledger_dialogues(
    config: GatewayConfig, task: str, *, since: float | None = None, teacher: str | None = None
) -> tuple[Dialogues, int, dict[str, int]]:
    """The task's logged conversations and the teacher's answers as they were (trimmed, not normalised);
    also how many requests were read and what was left out, by reason."""
    from collections import Counter

    from tokenomy.distill.ledger import teacher_requests

    requests, students = teacher_requests(config, task, since)
    skipped: Counter[str] = Counter()
    conversations: list[list[dict[str, Any]]] = []
    answers: list[str] = []
    for req in requests:
        served = req.served_model or req.requested_model
        if served in students:
            skipped["answered by a student"] += 1
        elif teacher is not None and served != teacher:
            skipped[f"answered by another model than {teacher}"] += 1
        elif req.response is None or not req.response.strip():
            skipped["no stored answer"] += 1
        elif not text_of({"messages": req.messages}).strip():
            skipped["no user text"] += 1
        else:
            conversations.append(messages_of({"messages": req.messages}))
            answers.append(req.response.strip())
    if not answers:
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.items()) or "none"
        raise DistillDataError(f"no usable teacher answers for task {task!r} in the ledger (left out: {reasons})")
    return Dialogues(conversations, answers), len(requests), dict(skipped)
