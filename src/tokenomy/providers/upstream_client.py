"""The port between the HTTP providers and an upstream HTTP client library.

Providers see only :class:`UpstreamResponse` and the exceptions below; ``HttpPool`` picks the
implementation named by ``server.upstream_client`` (``pyreqwest`` or ``aiohttp``). Every
implementation behaves the same way: keep-alive pooling, no ``Accept-Encoding`` sent and no
decompression, proxies from the environment (``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``, read
once at start), TLS verified against the system CA store (``SSL_CERT_FILE``/``SSL_CERT_DIR``
honoured), and a cancelled or closed response closes its connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class UpstreamTransportError(Exception):
    """The connection to an upstream failed; ``cause`` names what the client library reported."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class UpstreamTimeout(UpstreamTransportError):
    """The call ran past its connect or total timeout."""


class UpstreamUnreachable(UpstreamTransportError):
    """No connection could be made (refused, no route, DNS, TLS handshake)."""


class UpstreamCut(UpstreamTransportError):
    """The upstream closed the connection before the response (or its body) was complete."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-call limits: the whole call (body included) and the connect phase, in seconds."""

    total: float
    connect: float


class UpstreamResponse(Protocol):
    """A response whose head has arrived; the body is read with exactly one of the readers.

    The readers raise the exceptions above (never a client library's own). ``release`` returns a
    fully read connection to the pool; ``close`` drops the connection (a stream given up early).
    """

    status: int
    content_type: str  # the media type, lower case, without parameters ("application/octet-stream" if absent)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), if present."""

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""

    def lines(self) -> AsyncIterator[bytes]:
        """The body split after each ``\\n`` (a last line without one included)."""

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in pieces of any size."""

    def release(self) -> None:
        """Give the connection back to the pool (or drop it if the body was not read)."""

    def close(self) -> None:
        """Drop the connection now."""


class UpstreamClient(Protocol):
    """A pooled HTTP client: one per gateway process and provider."""

    async def start(self) -> None:
        """Open the pool."""

    async def close(self) -> None:
        """Close the pool and its connections."""

    async def post(
        self,
        url: str,
        data: bytes,
        headers: dict[str, str],
        timeouts: Timeouts,
        exact: bool = False,
        stream: bool = False,
    ) -> UpstreamResponse:
        """POST ``data``; returns once the response head is in. ``exact``: the URL is already
        percent-encoded and goes out byte for byte (a signed request); ``stream``: the body will be
        read as it comes (otherwise a client may read it whole before returning)."""


def make_client(kind: str, connections: int) -> UpstreamClient:
    """The client implementation ``kind`` with up to ``connections`` pooled connections per host."""
    if kind == "aiohttp":
        from tokenomy.providers.aiohttp_client import AiohttpClient

        return AiohttpClient(connections)
    if kind == "pyreqwest":
        from tokenomy.providers.pyreqwest_client import PyreqwestClient

        return PyreqwestClient(connections)
    raise ValueError(f"unknown upstream client {kind!r}; known: aiohttp, pyreqwest")
