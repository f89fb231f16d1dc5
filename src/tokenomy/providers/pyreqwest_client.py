"""The upstream client port on pyreqwest (Rust's reqwest and hyper; ``server.upstream_client: pyreqwest``).

About a third of aiohttp's instructions per call (``docs/benchmarks.md``, "Upstream client").
A call that will be read whole is sent with the body read in one go (reqwest's fastest path); a
stream is sent streamed, with no read-ahead so the head comes back as soon as it arrives. reqwest
reads ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` and the CA store (``SSL_CERT_FILE``,
``SSL_CERT_DIR``, else the system's) when a client is built (at its first call). A call cancelled
before its response head is not aborted by pyreqwest 0.15.1: it runs on until the upstream answers
(or the total timeout), which is why this is not the default client (``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, PyreqwestError, ReadError, RequestTimeoutError, WriteError
from pyreqwest.request import StreamRequest
from pyreqwest.response import Response

from tokenomy.providers.upstream_client import (
    Timeouts,
    UpstreamCut,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTransportError,
    UpstreamUnreachable,
)

_DEFAULT_TYPE = "application/octet-stream"
_closing: set[asyncio.Task[Any]] = set()  # streams being closed (a task needs a reference until done)


def neutral(exc: PyreqwestError) -> UpstreamTransportError:
    """The port's exception for a pyreqwest exception."""
    name = type(exc).__name__
    if isinstance(exc, RequestTimeoutError):
        return UpstreamTimeout(name)
    if isinstance(exc, ConnectError):
        # reqwest reports a connection closed before the answer as a connect error too; only a
        # failure while connecting (refused, DNS, TLS) says "client error (Connect)"
        causes = (exc.details or {}).get("causes") or []
        if any(cause.get("message") == "client error (Connect)" for cause in causes):
            return UpstreamUnreachable(name)
        return UpstreamCut(name)
    if isinstance(exc, ReadError | WriteError):
        return UpstreamCut(name)
    return UpstreamTransportError(name)


def media_type(value: str | None) -> str:
    """The media type of a ``Content-Type`` value, as aiohttp reports it (lower case, no parameters)."""
    if not value:
        return _DEFAULT_TYPE
    kind = value.partition(";")[0].strip().lower()
    return kind if kind.count("/") == 1 else "text/plain"


def _in_background(aw: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.get_running_loop().create_task(aw)
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class PyreqwestResponse:
    """A pyreqwest response behind the port: whole (read at send) or streamed (``request`` set)."""

    __slots__ = ("_request", "_resp", "content_type", "status")

    def __init__(self, resp: Response, request: StreamRequest | None) -> None:
        self._resp = resp
        self._request = request
        self.status = resp.status
        self.content_type = media_type(resp.get_header("content-type"))

    def header(self, name: str) -> str | None:
        """The first value of header ``name``."""
        return self._resp.get_header(name)

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        try:
            return bytes(await self._resp.bytes())
        except PyreqwestError as exc:
            raise neutral(exc) from None
        finally:
            self.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (a whole response: in one piece)."""
        if self._request is None:
            yield await self.read()
            return
        reader = self._resp.body_reader
        try:
            while (data := await reader.read_chunk()) is not None:
                yield bytes(data)
        except PyreqwestError as exc:
            raise neutral(exc) from None

    async def lines(self) -> AsyncIterator[bytes]:
        """The body split after each ``\\n``."""
        buffer = bytearray()
        async for data in self.chunks():
            scan = len(buffer)
            buffer += data
            start = 0
            while (end := buffer.find(b"\n", scan)) >= 0:
                yield bytes(buffer[start : end + 1])
                start = scan = end + 1
            del buffer[:start]
        if buffer:
            yield bytes(buffer)

    def release(self) -> None:
        """A read body's connection is back in the pool already; an unread one is dropped."""
        self.close()

    def close(self) -> None:
        """Drop the connection of a stream (at once: the exit only drops reqwest's body)."""
        request, self._request = self._request, None
        if request is not None:
            _in_background(request.__aexit__(None, None, None))


class PyreqwestClient:
    """pyreqwest clients (one per connect timeout, as reqwest sets that per client): bounded,
    keep-alive, no decompression and no ``Accept-Encoding``."""

    def __init__(self, connections: int) -> None:
        self._limit = connections
        self._clients: dict[float, Client] = {}
        self._totals: dict[float, timedelta] = {}

    def _client(self, connect_s: float) -> Client:
        client = self._clients.get(connect_s)
        if client is None:
            builder = ClientBuilder().max_connections(self._limit).pool_idle_timeout(timedelta(seconds=30))
            builder = builder.gzip(False).brotli(False).zstd(False).deflate(False)
            client = builder.connect_timeout(timedelta(seconds=connect_s)).build()
            self._clients[connect_s] = client
        return client

    async def start(self) -> None:
        """Nothing to open: each client is built on its first call (reading the environment then)."""

    async def close(self) -> None:
        """Close every client and its connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def post(
        self,
        url: str,
        data: bytes,
        headers: dict[str, str],
        timeouts: Timeouts,
        exact: bool = False,
        stream: bool = False,
    ) -> UpstreamResponse:
        """POST ``data``; a whole response unless ``stream`` (then the head as soon as it is in)."""
        total = self._totals.get(timeouts.total)
        if total is None:
            total = self._totals[timeouts.total] = timedelta(seconds=timeouts.total)
        try:  # building a client can fail too (no CA certificates found, say)
            builder = self._client(timeouts.connect).post(url).body_bytes(data).headers(headers).timeout(total)
            if not stream:
                return PyreqwestResponse(await builder.build().send(), None)
            request = builder.streamed_read_buffer_limit(0).build_streamed()
            return PyreqwestResponse(await request.__aenter__(), request)
        except PyreqwestError as exc:
            raise neutral(exc) from None
