"""Training and test examples: JSONL lines ``{"text" | "messages", "label"}``."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DistillDataError(ValueError):
    """Examples that cannot be used, with the file, line and reason."""


@dataclass(frozen=True, slots=True)
class Examples:
    """Texts and their labels, in file order."""

    texts: list[str]
    labels: list[str]


def text_of(row: dict[str, Any]) -> str:
    """The text a student reads: ``text``, or the user turns of ``messages`` joined by newlines."""
    if "text" in row:
        value = row["text"]
        return value if isinstance(value, str) else ""
    messages = row.get("messages")
    if not isinstance(messages, list):
        return ""
    parts = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n".join(parts)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL file (``.gz`` too) with their line numbers; blank lines skipped."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise DistillDataError(f"{path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise DistillDataError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(row, dict):
            raise DistillDataError(f"{path}:{number}: not a JSON object")
        yield number, row


def load_examples(path: Path, *, need_labels: bool = True) -> Examples:
    """Read a JSONL file (``.gz`` too); every line needs a non-empty text and a label."""
    texts: list[str] = []
    labels: list[str] = []
    for number, row in read_rows(path):
        text = text_of(row)
        if not text.strip():
            raise DistillDataError(f'{path}:{number}: empty text (give "text" or user "messages")')
        label = row.get("label")
        if need_labels and (label is None or str(label).strip() == ""):
            raise DistillDataError(f'{path}:{number}: no "label"')
        texts.append(text)
        labels.append(str(label).strip() if label is not None else "")
    if not texts:
        raise DistillDataError(f"{path}: no examples")
    return Examples(texts, labels)


def check_labels(train: Examples, val: Examples | None = None) -> Counter[str]:
    """The training labels' counts; an error for one label, or validation labels training lacks."""
    counts = Counter(train.labels)
    if len(counts) < 2:
        raise DistillDataError(f"the training data has one label ({next(iter(counts))!r}); a student needs two or more")
    if val is not None:
        unknown = sorted(set(val.labels) - set(counts))
        if unknown:
            raise DistillDataError(f"the validation data has labels the training data lacks: {', '.join(unknown[:5])}")
    return counts
