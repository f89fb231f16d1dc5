"""The upstream client port on aiohttp (one session; ``server.upstream_client: aiohttp``)."""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
from aiohttp.streams import EofStream
from yarl import URL

from tokenomy.providers.upstream_client import (
    Timeouts,
    UpstreamCut,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTransportError,
    UpstreamUnreachable,
)


def tls_context() -> ssl.SSLContext:
    """aiohttp's verified default context, made now so ``SSL_CERT_FILE``/``SSL_CERT_DIR`` are read at
    start rather than when aiohttp was imported (it loads certificates: call it off the loop)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


def neutral(exc: BaseException) -> UpstreamTransportError:
    """The port's exception for an aiohttp (or timeout) exception."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(name)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable(name)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return UpstreamCut(name)
    return UpstreamTransportError(name)


class AiohttpResponse:
    """An aiohttp response behind the port."""

    __slots__ = ("_resp", "content_type", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.content_type = resp.content_type

    def header(self, name: str) -> str | None:
        """The first value of header ``name``."""
        return self._resp.headers.get(name)

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise neutral(exc) from None
        finally:
            self._resp.release()

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line (aiohttp's line reader)."""
        try:
            async for line in self._resp.content:
                yield line
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise neutral(exc) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (``readany`` called directly: ``iter_any``'s iterator adds a
        coroutine per piece)."""
        read = self._resp.content.readany
        try:
            while data := await read():
                yield data
        except EofStream:
            return
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise neutral(exc) from None

    def release(self) -> None:
        """Back to the pool (aiohttp drops a connection whose body was not read)."""
        self._resp.release()

    def close(self) -> None:
        """Drop the connection."""
        self._resp.close()


class AiohttpClient:
    """One aiohttp session: bounded pool, no automatic headers, no decompression."""

    def __init__(self, connections: int) -> None:
        self._limit = connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        """Open the session (idempotent)."""
        if self._session is not None:
            return
        context = await asyncio.to_thread(tls_context)
        if self._session is None:  # another caller may have opened it meanwhile
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit,
                ttl_dns_cache=300,
                keepalive_timeout=30,
                ssl=context,
            )
            # No Accept-Encoding, so upstreams answer uncompressed and decompression is skipped:
            # measured ~5% of a request's CPU, for bodies that are small JSON or SSE anyway.
            # Proxies from the environment: looked up per request only when some are set at start
            # (aiohttp's trust_env reads them on every request).
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                trust_env=bool(urllib.request.getproxies()),
            )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self,
        url: str,
        data: bytes,
        headers: dict[str, str],
        timeouts: Timeouts,
        exact: bool = False,
        stream: bool = False,
    ) -> UpstreamResponse:
        """POST ``data``; the response once its head is in (``stream`` makes no difference here)."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        timeout = self._timeouts.get(timeouts)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
            self._timeouts[timeouts] = timeout
        try:
            resp = await self._session.post(
                URL(url, encoded=True) if exact else url, data=data, headers=headers, timeout=timeout
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise neutral(exc) from None
        return AiohttpResponse(resp)
