"""Reading Server-Sent Events from an upstream response body.

A small incremental parser over the raw body as it arrives (the SSE grammar is a few lines; the
libraries that implement it are tied to particular HTTP clients). Each piece of the body is split
in bulk: every event it completes is parsed at once, with no await per line.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from tokenomy.providers import upstream_errors
from tokenomy.providers.upstream_client import UpstreamResponse, UpstreamTransportError

Event = tuple[str | None, str]


class SseSplitter:
    """Incremental SSE parser: ``feed`` pieces of the body cut anywhere, get the events they complete.

    Lines end with CRLF, CR or LF (a CRLF cut between its two bytes included); an event ends at a
    blank line; ``data`` lines join with newlines; comments, ``id`` and ``retry`` are skipped. Bytes
    are decoded only once an event is complete, so a cut inside a UTF-8 character is harmless.
    """

    __slots__ = ("_buffer", "_skip_lf")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip_lf = False  # the last piece ended with CR: a LF starting the next one belongs to it

    def feed(self, piece: bytes) -> list[Event]:
        """The events that ``piece`` completes, in order (often none or one, sometimes several)."""
        if not piece:
            return []
        if self._skip_lf and piece[0] == 0x0A:
            piece = piece[1:]
        self._skip_lf = False
        if b"\r" in piece:
            self._skip_lf = piece.endswith(b"\r")
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer
        if not buffer:  # the usual case: no event left open by the previous piece
            end = piece.rfind(b"\n\n")
            if end < 0:
                buffer += piece
                return []
            buffer += piece[end + 2 :]
            return _parse(piece[:end])
        scan = len(buffer) - 1  # the buffer holds no blank line, but may end with half of one
        buffer += piece
        end = buffer.rfind(b"\n\n", scan)
        if end < 0:
            return []
        complete = bytes(buffer[:end])
        del buffer[: end + 2]
        return _parse(complete)

    def close(self) -> list[Event]:
        """The event left open at the end of the body (one without its blank line), if any."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return _parse(rest)


def _parse(block: bytes) -> list[Event]:
    """The events of ``block``: whole lines joined by LF, ending where an event ends."""
    if block[:6] == b"data: " and b"\n" not in block:  # the common event: one data line
        return [(None, block[6:].decode("utf-8", "replace"))]
    events: list[Event] = []
    event: str | None = None
    data: list[str] = []
    for line in block.split(b"\n"):
        if not line:
            if data:
                events.append((event, "\n".join(data)))
            event, data = None, []
            continue
        if line[0] == 0x3A:
            continue  # comment / keep-alive
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif field == b"event":
            event = value.decode("utf-8", "replace")
    if data:
        events.append((event, "\n".join(data)))
    return events


async def iter_sse(body: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Yield ``(event, data)`` for each event of a body given in pieces cut anywhere (raw chunks, or
    lines); multi-line ``data`` fields are joined with newlines."""
    splitter = SseSplitter()
    async for piece in body:
        for item in splitter.feed(piece):
            yield item
    for item in splitter.close():
        yield item


async def json_events(resp: UpstreamResponse, label: str) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
    """``(event name or payload type, payload)`` for each JSON-object event of an upstream stream.

    A payload that is not a JSON object, and a broken connection, end the stream with the
    gateway's upstream error; the response is closed when the iteration ends, however it ends.
    The splitter runs inline (not through :func:`iter_sse`): one generator fewer to wake per event.
    """
    splitter = SseSplitter()
    try:
        async for piece in resp.chunks():
            for event, data in splitter.feed(piece):
                payload = _json_object(data, label)
                yield event or str(payload.get("type", "")), payload
        for event, data in splitter.close():
            payload = _json_object(data, label)
            yield event or str(payload.get("type", "")), payload
    except UpstreamTransportError as exc:
        raise upstream_errors.from_read_exception(exc, label) from None
    finally:
        resp.close()


def _json_object(data: str, label: str) -> dict[str, Any]:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise upstream_errors.stream_error("Upstream sent a malformed event (not JSON).", label) from None
    if not isinstance(payload, dict):
        raise upstream_errors.stream_error("Upstream sent a stream event that is not an object.", label)
    return payload


def ended_early(label: str) -> Exception:
    """The error for a stream that stopped before the answer was complete."""
    return upstream_errors.stream_error("Upstream stream ended before the answer was complete.", label)
