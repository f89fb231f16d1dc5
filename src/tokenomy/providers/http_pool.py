"""The pooled upstream HTTP client shared by the HTTP providers (behind the port of ``upstream_client``)."""

from __future__ import annotations

from collections.abc import Callable

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.providers import upstream_errors
from tokenomy.providers.upstream_client import Timeouts, UpstreamResponse, UpstreamTransportError, make_client

HeaderFactory = Callable[[Deployment], dict[str, str]]


class HttpPool:
    """One pooled upstream client (``server.upstream_client``) with per-deployment headers and
    timeouts computed once."""

    def __init__(self, config: GatewayConfig, header_factory: HeaderFactory) -> None:
        self._client = make_client(config.server.upstream_client, config.server.upstream_connections)
        self._header_factory = header_factory
        self._headers: dict[int, dict[str, str]] = {}
        self._timeouts: dict[int, Timeouts] = {}

    async def start(self) -> None:
        """Open the pool (idempotent)."""
        await self._client.start()

    async def close(self) -> None:
        """Close the pool and its connections."""
        await self._client.close()

    async def post(
        self,
        url: str,
        data: bytes,
        deployment: Deployment,
        extra_headers: dict[str, str] | None = None,
        exact: bool = False,
        stream: bool = False,
    ) -> UpstreamResponse:
        """POST ``data``; upstream HTTP errors and transport failures become ``GatewayError``.

        ``exact``: ``url`` is already percent-encoded and goes out byte for byte (a signed request);
        ``stream``: the body will be read as it arrives (an event stream).
        """
        key = id(deployment)
        headers = self._headers.get(key)
        if headers is None:
            headers = {"content-type": "application/json", **self._header_factory(deployment), **deployment.headers}
            self._headers[key] = headers
            self._timeouts[key] = Timeouts(total=deployment.timeout_s, connect=deployment.connect_timeout_s)
        if extra_headers:
            headers = {**headers, **extra_headers}
        try:
            resp = await self._client.post(url, data, headers, self._timeouts[key], exact, stream)
        except UpstreamTransportError as exc:
            raise upstream_errors.from_exception(exc, deployment.label) from None
        if resp.status >= 400:
            try:
                body = await resp.read()
            except UpstreamTransportError:
                body = b""
            raise upstream_errors.from_status(resp.status, body, resp.header("retry-after"), deployment.label)
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


async def read_body(resp: UpstreamResponse, deployment: Deployment) -> bytes:
    """The whole body of ``resp``, releasing the connection; transport failures become ``GatewayError``."""
    try:
        return await resp.read()
    except UpstreamTransportError as exc:
        raise upstream_errors.from_read_exception(exc, deployment.label) from None
