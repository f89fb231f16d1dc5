"""The pooled upstream HTTP client shared by the HTTP providers (aiohttp, one session)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from yarl import URL

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.providers import upstream_errors

HeaderFactory = Callable[[Deployment], dict[str, str]]


class HttpPool:
    """One aiohttp session with per-deployment headers and timeouts computed once."""

    def __init__(self, config: GatewayConfig, header_factory: HeaderFactory) -> None:
        self._limit = config.server.upstream_connections
        self._header_factory = header_factory
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[int, dict[str, str]] = {}
        self._timeouts: dict[int, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        """Open the session (idempotent)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=self._limit, ttl_dns_cache=300, keepalive_timeout=30
            )
            # No Accept-Encoding, so upstreams answer uncompressed and decompression is skipped:
            # measured ~5% of a request's CPU, for bodies that are small JSON or SSE anyway.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")
            )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str | URL, data: bytes, deployment: Deployment, extra_headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """POST ``data``; upstream HTTP errors and transport failures become ``GatewayError``."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        key = id(deployment)
        headers = self._headers.get(key)
        if headers is None:
            headers = {"content-type": "application/json", **self._header_factory(deployment), **deployment.headers}
            self._headers[key] = headers
            self._timeouts[key] = aiohttp.ClientTimeout(
                total=deployment.timeout_s, sock_connect=deployment.connect_timeout_s
            )
        if extra_headers:
            headers = {**headers, **extra_headers}
        try:
            resp = await self._session.post(url, data=data, headers=headers, timeout=self._timeouts[key])
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise upstream_errors.from_exception(exc, deployment.label) from None
        if resp.status >= 400:
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                body = b""
            finally:
                resp.release()
            raise upstream_errors.from_status(resp.status, body, resp.headers, deployment.label)
        return resp


class HttpProvider:
    """Base of the providers that talk HTTP to an upstream: pool lifecycle and body reading."""

    def __init__(self, config: GatewayConfig) -> None:
        self._pool = HttpPool(config, self.auth_headers)

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        """The credentials headers of ``deployment`` (each wire protocol has its own)."""
        raise NotImplementedError

    async def start(self) -> None:
        """Open the connection pool."""
        await self._pool.start()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._pool.close()

    def ready(self) -> bool:
        """Always ready: upstream health is the routing stage's business."""
        return True


async def read_body(resp: aiohttp.ClientResponse, deployment: Deployment) -> bytes:
    """The whole body of ``resp``, releasing the connection; transport failures become ``GatewayError``."""
    try:
        return await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise upstream_errors.from_read_exception(exc, deployment.label) from None
    finally:
        resp.release()
