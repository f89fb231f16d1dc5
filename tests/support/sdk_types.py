"""Helpers for checking translated payloads against the official SDKs' types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def materialise(value: Any) -> Any:
    """Materialise pydantic's lazy iterators so that every nested item is validated."""
    if isinstance(value, dict):
        return {k: materialise(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [materialise(v) for v in value]
    return value
