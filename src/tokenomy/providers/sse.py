"""Reading Server-Sent Events from an upstream response body.

A small incremental parser over aiohttp's line reader (the SSE grammar is a few lines; the
libraries that implement it are tied to other HTTP clients).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp


async def iter_sse(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str | None, str]]:
    """Yield ``(event, data)`` for each event; multi-line ``data`` fields are joined with newlines."""
    event: str | None = None
    data: list[str] = []
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(b":"):
            continue  # comment / keep-alive
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif field == b"event":
            event = value.decode("utf-8", "replace")
    if data:
        yield event, "\n".join(data)
