"""Checking a batch input file, line by line, as OpenAI's Batch API does.

A line that is not a JSON object with ``custom_id``, ``method``, ``url`` and ``body`` becomes a
failed item (it lands in the error file, named by its line); the rest of the batch still runs.
Problems OpenAI rejects the whole batch for (a duplicate ``custom_id``, a line for another
endpoint than the batch's, too many lines) fail the batch with ``errors`` naming the lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tokenomy.batches.store import Item

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions")
_MAX_BATCH_ERRORS = 100  # OpenAI lists a bounded number of line errors


@dataclass
class Checked:
    """The items of an input file, and the errors that fail the whole batch (empty when it may run)."""

    items: list[Item] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def line_error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    """One entry of a batch's ``errors.data``."""
    return {"code": code, "message": message, "param": param, "line": line}


def check_input(path: Path, endpoint: str, max_lines: int) -> Checked:
    """Read ``path`` (JSONL) into items for a batch on ``endpoint``."""
    out = Checked()
    number = 0
    for number, item, error in iter_lines(path, endpoint):
        if number > max_lines:
            out.errors = [line_error("too_many_requests", f"The input file has more than {max_lines} requests.")]
            return out
        if error is not None and len(out.errors) < _MAX_BATCH_ERRORS:
            out.errors.append(error)
        if item is not None:
            out.items.append(item)
    if number == 0:
        out.errors.append(line_error("empty_file", "The input file has no requests."))
    return out


def iter_lines(path: Path, endpoint: str) -> Iterator[tuple[int, Item | None, dict[str, Any] | None]]:
    """``(line number, item, batch-failing error)`` for each non-blank line, read lazily."""
    seen: dict[str, int] = {}
    with path.open("rb") as handle:
        number = 0
        for raw in handle:
            if raw.strip():
                number += 1
                yield number, *_check_line(number, raw, endpoint, seen)


def endpoint_of(path: Path) -> str | None:
    """The ``url`` of the first line that names one."""
    with path.open("rb") as handle:
        for raw in handle:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict) and isinstance(data.get("url"), str):
                return str(data["url"])
    return None


def _check_line(
    number: int, raw: bytes, endpoint: str, seen: dict[str, int]
) -> tuple[Item | None, dict[str, Any] | None]:
    """The item of one line (a failed one when malformed), and a batch-failing error if any."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _invalid(number, None, "invalid_json_line", f"Line {number} is not valid JSON: {exc}."), None
    if not isinstance(data, dict):
        return _invalid(number, None, "invalid_json_line", f"Line {number} is not a JSON object."), None
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return _invalid(number, None, "missing_custom_id", f"Line {number} has no custom_id string."), None
    if custom_id in seen:
        message = f"The custom_id {custom_id!r} on line {number} was already used on line {seen[custom_id]}."
        return None, line_error("duplicate_custom_id", message, number, "custom_id")
    seen[custom_id] = number
    url = data.get("url")
    if url != endpoint:
        message = f"Line {number} is for {url!r}, but this batch's endpoint is {endpoint!r}."
        return None, line_error("mismatched_endpoint", message, number, "url")
    if data.get("method") != "POST":
        return _invalid(number, custom_id, "invalid_method", f"Line {number}: method must be 'POST'."), None
    body = data.get("body")
    if not isinstance(body, dict):
        return _invalid(number, custom_id, "invalid_body", f"Line {number}: body must be a JSON object."), None
    return Item(number, custom_id, "pending", body, None), None


def _invalid(number: int, custom_id: str | None, code: str, message: str) -> Item:
    error = {"code": code, "message": message, "line": number}
    return Item(number, custom_id, "failed", None, {"response": None, "error": error})
