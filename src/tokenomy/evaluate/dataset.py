"""Evaluation datasets: JSON Lines or CSV files of items, each a chat request and its reference.

One item per line (JSONL) or row (CSV, the same column names; ``messages``, ``expected`` objects,
``request`` and ``metadata`` are JSON text in their cells):

* ``id``: optional; a stable hash of the item's content otherwise;
* ``messages`` (OpenAI chat messages) or ``prompt`` (a string, sent as one user message);
* ``expected``: optional reference, a string or an object (for structured scorers);
* ``task``: optional; else the command's ``--task``, else ``default``;
* ``request``: optional extra request fields (``response_format``, ``max_tokens``, ``temperature``...);
* ``metadata``: optional, kept with the results.

A malformed line stops the load with the file and line named (:class:`DatasetError`), or is
skipped and counted with ``skip_bad``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

DEFAULT_TASK = "default"
_RESERVED = frozenset({"model", "messages", "stream", "stream_options", "n"})
"""Request fields the evaluation sets itself; an item may not override them."""


class DatasetError(ValueError):
    """A dataset that cannot be read; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One thing to ask every candidate model."""

    id: str
    task: str
    messages: list[dict[str, Any]]
    expected: Any = None
    request: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def prompt_text(self) -> str:
        """The text a router sees: the last user turn (as the gateway's routers read it)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return ""


@dataclass(frozen=True, slots=True)
class Dataset:
    """The items loaded and how many malformed lines were skipped."""

    items: list[EvalItem]
    skipped: int = 0
    source: str = ""

    def tasks(self) -> list[str]:
        """Task names in first-seen order."""
        return list(dict.fromkeys(item.task for item in self.items))


def load_dataset(path: str | Path, *, task: str | None = None, skip_bad: bool = False) -> Dataset:
    """Read a ``.jsonl``/``.json``/``.csv`` dataset (optionally ``.gz``)."""
    file = Path(path)
    name = file.name.removesuffix(".gz")
    try:
        text = _open(file)
    except OSError as exc:
        raise DatasetError(f"{file}: cannot be read: {exc.strerror or exc}") from None
    rows = _csv_rows(text) if name.endswith(".csv") else _jsonl_rows(text)
    items: list[EvalItem] = []
    seen: set[str] = set()
    skipped = 0
    with text:
        for line, row in rows:
            try:
                if isinstance(row, str):
                    raise ValueError(row)
                item = parse_item(row, task)
                if item.id in seen:
                    raise ValueError(f"duplicate id {item.id!r}")
            except ValueError as exc:
                if not skip_bad:
                    raise DatasetError(f"{file}: line {line}: {exc}") from None
                skipped += 1
                continue
            seen.add(item.id)
            items.append(item)
    if not items:
        raise DatasetError(f"{file}: no items" + (f" ({skipped} malformed lines skipped)" if skipped else ""))
    return Dataset(items, skipped, str(file))


def parse_item(row: dict[str, Any], default_task: str | None = None) -> EvalItem:
    """One item from a parsed JSON object (or CSV row); ``ValueError`` says what is wrong."""
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object")
    messages = row.get("messages")
    prompt = row.get("prompt")
    if messages is not None and prompt is not None:
        raise ValueError("give 'messages' or 'prompt', not both")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("'prompt' must be a non-empty string")
        messages = [{"role": "user", "content": prompt}]
    messages = _json_cell(messages, "messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("needs 'messages' (a non-empty list of chat messages) or 'prompt'")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or "content" not in message:
            raise ValueError(f"messages[{i}] must be an object with 'role' and 'content'")
    request = _json_cell(row.get("request") or {}, "request")
    if not isinstance(request, dict):
        raise ValueError("'request' must be an object of extra request fields")
    clash = sorted(_RESERVED & request.keys())
    if clash:
        raise ValueError(f"'request' may not set {', '.join(clash)} (the evaluation sets them)")
    metadata = _json_cell(row.get("metadata") or {}, "metadata")
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    expected = row.get("expected")
    if isinstance(expected, str) and expected[:1] in "{[" and expected[-1:] in "}]":
        with contextlib.suppress(ValueError):  # CSV cells hold objects as JSON text
            expected = json.loads(expected)
    task = row.get("task") or default_task or DEFAULT_TASK
    if not isinstance(task, str):
        raise ValueError("'task' must be a string")
    ident = row.get("id")
    if ident in (None, ""):
        ident = stable_id(messages, expected, request)
    elif not isinstance(ident, str | int):
        raise ValueError("'id' must be a string or a number")
    return EvalItem(str(ident), task, messages, expected, request, metadata)


def stable_id(messages: Any, expected: Any, request: Any) -> str:
    """A content hash: the same item gets the same id in every run (so ``--resume`` finds it)."""
    blob = json.dumps([messages, expected, request], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _json_cell(value: Any, name: str) -> Any:
    if isinstance(value, str) and name != "prompt":
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(f"'{name}' is not valid JSON") from None
    return value


def _open(file: Path) -> TextIO:
    if file.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(file, "rb"), encoding="utf-8")
    return file.open(encoding="utf-8", newline="")


def _jsonl_rows(text: TextIO) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield number, f"not valid JSON: {exc}"
            continue
        yield number, value if isinstance(value, dict) else "expected a JSON object"


def _csv_rows(text: TextIO) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(text)
    for row in reader:
        clean = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
        if None in row:
            yield reader.line_num, "more cells than the header has columns"
            continue
        yield reader.line_num, clean
