"""I/O for the Anthropic Messages API; the translation itself lives in :mod:`.translate`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tokenomy.config.models import Deployment
from tokenomy.errors import invalid_request
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.providers import upstream_errors
from tokenomy.providers.anthropic import translate
from tokenomy.providers.http_pool import HttpProvider, read_body
from tokenomy.providers.sse import iter_sse


class AnthropicProvider(HttpProvider):
    """Forward chat requests to an Anthropic Messages API endpoint."""

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        """``x-api-key`` and ``anthropic-version``."""
        headers = {"anthropic-version": deployment.anthropic_version}
        key = deployment.api_key.resolve() if deployment.api_key is not None else None
        if key:
            headers["x-api-key"] = key
        return headers

    async def send(self, ctx: CallContext, deployment: Deployment) -> Response:
        """Translate, POST to ``/v1/messages``, translate back."""
        if ctx.endpoint is not Endpoint.CHAT:
            raise invalid_request(
                f"The model {ctx.model!r} is served by the Anthropic Messages API, which has no "
                f"{ctx.endpoint.value} endpoint.",
                param="model",
            )
        try:
            body = translate.to_anthropic_request(ctx.body, deployment.model)
        except translate.UnsupportedParameter as exc:
            raise invalid_request(str(exc), param=exc.param, code="unsupported_parameter") from None
        if ctx.prompt_cache is not None:  # breakpoints the optimize stage planned (tokenomy.optimize.prompt_cache)
            body = ctx.prompt_cache.apply(body)
        url = f"{deployment.base_url}/v1/messages"
        resp = await self._pool.post(url, orjson.dumps(body), deployment)
        created = int(time.time())
        if ctx.stream:
            translator = translate.AnthropicStreamTranslator(ctx.model, ctx.request_id, created, include_usage=True)
            return Stream(_chunks(resp, translator, deployment.label), resp.close)
        raw = await read_body(resp, deployment)
        try:
            message = orjson.loads(raw)
            result = translate.from_anthropic_response(message, ctx.model, ctx.request_id, created)
        except (orjson.JSONDecodeError, translate.UpstreamStreamError, KeyError, TypeError, ValueError):
            raise upstream_errors.stream_error(
                "Upstream returned a body that is not an Anthropic message.", deployment.label
            ) from None
        return Completion(result, Usage.from_openai(result.get("usage")))


async def _chunks(
    resp: aiohttp.ClientResponse, translator: translate.AnthropicStreamTranslator, label: str
) -> AsyncIterator[dict[str, Any]]:
    stopped = False
    try:
        async for event, data in iter_sse(resp.content):
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise upstream_errors.stream_error("Upstream sent a malformed event (not JSON).", label) from None
            if not isinstance(payload, dict):
                raise upstream_errors.stream_error("Upstream sent a stream event that is not an object.", label)
            kind = event or str(payload.get("type", ""))
            stopped = stopped or kind == "message_stop"
            for chunk in translator.feed(kind, payload):
                yield chunk
        if not stopped:
            raise upstream_errors.stream_error("Upstream stream ended before the answer was complete.", label)
    except translate.UpstreamStreamError as exc:
        raise upstream_errors.stream_error(f"Upstream stream failed: {exc}", label) from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise upstream_errors.from_read_exception(exc, label) from None
    finally:
        resp.close()
