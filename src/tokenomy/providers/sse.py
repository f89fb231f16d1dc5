"""Reading Server-Sent Events from an upstream response body.

A small incremental parser over the upstream response's line reader (the SSE grammar is a few
lines; the libraries that implement it are tied to particular HTTP clients).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from tokenomy.providers import upstream_errors
from tokenomy.providers.upstream_client import UpstreamResponse, UpstreamTransportError


async def iter_sse(lines: AsyncIterator[bytes]) -> AsyncIterator[tuple[str | None, str]]:
    """Yield ``(event, data)`` for each event; multi-line ``data`` fields are joined with newlines."""
    event: str | None = None
    data: list[str] = []
    async for raw in lines:
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


async def json_events(resp: UpstreamResponse, label: str) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
    """``(event name or payload type, payload)`` for each JSON-object event of an upstream stream.

    A payload that is not a JSON object, and a broken connection, end the stream with the
    gateway's upstream error; the response is closed when the iteration ends, however it ends.
    """
    try:
        async for event, data in iter_sse(resp.lines()):
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise upstream_errors.stream_error("Upstream sent a malformed event (not JSON).", label) from None
            if not isinstance(payload, dict):
                raise upstream_errors.stream_error("Upstream sent a stream event that is not an object.", label)
            yield event or str(payload.get("type", "")), payload
    except UpstreamTransportError as exc:
        raise upstream_errors.from_read_exception(exc, label) from None
    finally:
        resp.close()


def ended_early(label: str) -> Exception:
    """The error for a stream that stopped before the answer was complete."""
    return upstream_errors.stream_error("Upstream stream ended before the answer was complete.", label)
