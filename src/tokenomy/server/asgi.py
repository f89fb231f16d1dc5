"""Thin ASGI primitives for the HTTP edge: the request, body reading, JSON and SSE responses.

The edge is a raw ASGI app rather than a framework: on the request path every microsecond
is overhead the user pays on each call (see docs/architecture.md for the measurements).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from tokenomy.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


ID_HEADER = "x-tokenomy-request-id"
"""The response header with the gateway's own id of the request (the ledger's primary key)."""


def id_headers(request_id: str, client_request_id: str | None) -> dict[str, str]:
    """``x-request-id`` (the client's own id echoed, else the gateway's) and the gateway's id."""
    return {"x-request-id": client_request_id or request_id, ID_HEADER: request_id}


class Request:
    """One HTTP request: the ASGI triple plus lower-cased headers and the query string."""

    __slots__ = (
        "_body", "_headers", "_watcher", "client", "client_request_id", "disconnected", "in_pipeline", "key", "path",
        "receive", "request_id", "responded", "scope", "send",
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.path: str = scope["path"]
        self._headers: dict[str, str] | None = None
        self.disconnected = False
        self.responded = False
        self.in_pipeline = False  # a call context exists: the record stage accounts for the request
        self.request_id = ""
        self.client_request_id: str | None = None  # the client's own x-request-id (a correlation field)
        self.client = ""  # the client's address (behind a trusted proxy: the address it forwarded)
        self.key: Any = None  # the caller's key record once the edge has authenticated it
        self._body: bytes | None = None
        self._watcher: asyncio.Task[None] | asyncio.TimerHandle | None = None

    @property
    def method(self) -> str:
        """The HTTP method."""
        return str(self.scope["method"])

    @property
    def headers(self) -> dict[str, str]:
        """Request headers, names lower-cased (the last value wins)."""
        if self._headers is None:
            self._headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.scope["headers"]}
        return self._headers

    @property
    def query(self) -> str:
        """The raw query string."""
        return bytes(self.scope.get("query_string", b"")).decode("latin-1")

    def id_headers(self) -> dict[str, str]:
        """The id headers of every response (see :func:`id_headers`)."""
        return id_headers(self.request_id, self.client_request_id)

    def watch_disconnect(self, after_s: float = 0.05) -> None:
        """Cancel the current task if the client goes away before the response is complete.

        Call once the body has been read. Cancelling propagates into the upstream call, so an
        abandoned request stops consuming (and paying for) upstream tokens. The watcher task is
        only created once the request has run for ``after_s``: most requests finish sooner, and
        a timer costs far less than a task on the hot path.
        """
        task = asyncio.current_task()
        if task is not None and self._watcher is None:
            self._watcher = asyncio.get_running_loop().call_later(after_s, self._start_watch, task)

    def _start_watch(self, task: asyncio.Task[Any]) -> None:
        if not self.responded and not task.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(task))

    async def _watch(self, task: asyncio.Task[Any]) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
        if not self.responded:
            self.disconnected = True
            task.cancel()

    def stop_watching(self) -> None:
        """Drop the disconnect watcher (the response is complete)."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def read_body(self, limit: int, timeout_s: float) -> bytes:
        """Read the whole body now (413 past ``limit`` bytes, 408 when it takes over ``timeout_s``);
        later :meth:`body` calls return it."""
        try:
            async with asyncio.timeout(timeout_s):
                self._body = await self.body(limit)
        except TimeoutError:
            raise GatewayError(
                408,
                f"The request body did not arrive within {timeout_s:g} s.",
                "invalid_request_error",
                code="request_timeout",
                headers={"connection": "close"},
            ) from None
        return self._body

    async def body(self, limit: int) -> bytes:
        """The whole body; 413 as soon as it grows past ``limit`` bytes."""
        if self._body is not None:
            if len(self._body) > limit:
                raise too_large(limit)
            return self._body
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise asyncio.CancelledError
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(limit: int) -> GatewayError:
    """413 for a body over the configured limit."""
    return GatewayError(
        413,
        f"Request body is larger than the limit of {limit} bytes.",
        "invalid_request_error",
        code="request_too_large",
        headers={"connection": "close"},  # the rest of the body is not read
    )


def encode_headers(extra: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs from a dict."""
    if not extra:
        return []
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A whole response."""
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON response."""
    await send_bytes(send, status, orjson.dumps(data), JSON, headers)


async def start_sse(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    """Begin a ``text/event-stream`` response."""
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})


def sse_frame(data: bytes, event: bytes | None = None) -> bytes:
    """One SSE event on the wire (``data`` is already-serialized JSON or a sentinel)."""
    return b"event: " + event + b"\ndata: " + data + b"\n\n" if event else b"data: " + data + b"\n\n"


async def send_event(send: Send, data: bytes, event: bytes | None = None) -> None:
    """One SSE event (``data`` is already-serialized JSON or a sentinel)."""
    await send({"type": "http.response.body", "body": sse_frame(data, event), "more_body": True})


async def send_events(send: Send, events: list[tuple[str, Any]]) -> None:
    """Named JSON events that are all ready at once, in one write (one ASGI send for the lot)."""
    if len(events) == 1:
        event, data = events[0]
        body = sse_frame(orjson.dumps(data), event.encode())
    else:
        body = b"".join([sse_frame(orjson.dumps(data), event.encode()) for event, data in events])
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def end_stream(send: Send, last: bytes = b"", events: list[tuple[str, Any]] | None = None) -> None:
    """Close a streaming response, with its ``last`` event in the same write when given (an
    already-serialized JSON or sentinel, as for :func:`send_event`), after named JSON ``events``."""
    body = b"".join([sse_frame(orjson.dumps(data), event.encode()) for event, data in events]) if events else b""
    if last:
        body += b"data: " + last + b"\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": False})
