"""OpenAI's file and batch objects, exactly as the official client parses them."""

from __future__ import annotations

import time
from typing import Any

from tokenomy.batches.store import FileRecord, new_id


def file_object(record: FileRecord) -> dict[str, Any]:
    """``{"object": "file", ...}``."""
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": record.created_at,
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def new_batch(
    input_file_id: str, endpoint: str, window: str, metadata: dict[str, str] | None, expiry_s: float
) -> dict[str, Any]:
    """A batch object in status ``validating``."""
    now = int(time.time())
    return {
        "id": new_id("batch_"),
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": window,
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + int(expiry_s),
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata,
    }


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A cursor-paginated list."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def output_line(batch_id: str, line: int, custom_id: str | None, result: dict[str, Any]) -> dict[str, Any]:
    """One line of an output or error file: ``{"id", "custom_id", "response", "error"}``."""
    return {
        "id": f"batch_req_{batch_id.removeprefix('batch_')}_{line}",
        "custom_id": custom_id,
        "response": result.get("response"),
        "error": result.get("error"),
    }
