"""I/O for OpenAI-compatible upstreams: one pooled aiohttp session per gateway process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import CallContext, Completion, Response, Stream, Usage
from tokenomy.providers import upstream_errors
from tokenomy.providers.http_pool import HttpPool
from tokenomy.providers.openai import translate
from tokenomy.providers.sse import iter_sse

log = logging.getLogger("tokenomy.providers.openai")


class OpenAIProvider:
    """Forward requests to any OpenAI-compatible server."""

    def __init__(self, config: GatewayConfig) -> None:
        self._pool = HttpPool(config, auth_headers)

    async def start(self) -> None:
        """Open the connection pool."""
        await self._pool.start()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._pool.close()

    def ready(self) -> bool:
        """Always ready: upstream health is the routing stage's business."""
        return True

    async def send(self, ctx: CallContext, deployment: Deployment) -> Response:
        """POST the request upstream; a stream for ``stream: true``, else a whole completion."""
        url = f"{deployment.base_url}{translate.PATHS[ctx.endpoint]}"
        data = translate.request_body(ctx.body, deployment.model, ctx.stream)
        resp = await self._pool.post(url, data, deployment)
        if ctx.stream:
            if not resp.content_type.startswith("text/event-stream"):
                resp.release()
                raise upstream_errors.stream_error(
                    f"Upstream answered a streaming request with {resp.content_type!r}, not an event stream.",
                    deployment.label,
                )
            return Stream(_chunks(resp, deployment.label), resp.close)
        try:
            raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise upstream_errors.from_exception(exc, deployment.label) from None
        finally:
            resp.release()
        try:
            body = translate.parse_response(raw)
        except translate.MalformedUpstream as exc:
            raise upstream_errors.stream_error(str(exc), deployment.label) from None
        return Completion(body, Usage.from_openai(body.get("usage")))


def auth_headers(deployment: Deployment) -> dict[str, str]:
    """``Authorization: Bearer`` when the deployment has a key."""
    key = deployment.api_key.resolve() if deployment.api_key is not None else None
    return {"authorization": f"Bearer {key}"} if key else {}


async def _chunks(resp: aiohttp.ClientResponse, label: str) -> AsyncIterator[dict[str, Any]]:
    finished = False
    try:
        async for _event, data in iter_sse(resp.content):
            chunk = translate.parse_chunk(data)
            if chunk is None:
                return
            finished = finished or translate.is_final(chunk)
            yield chunk
        if not finished:
            raise upstream_errors.stream_error("Upstream stream ended before the answer was complete.", label)
    except translate.MalformedUpstream as exc:
        raise upstream_errors.stream_error(str(exc), label) from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            raise upstream_errors.stream_error("Upstream closed the stream mid-way.", label) from None
        raise upstream_errors.from_exception(exc, label) from None
    except GatewayError:
        raise
    finally:
        resp.close()
