"""I/O for the Anthropic Messages API; the translation itself lives in :mod:`.translate`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from tokenomy.config.models import Deployment
from tokenomy.errors import invalid_request
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.providers import upstream_errors
from tokenomy.providers.anthropic import translate
from tokenomy.providers.http_pool import HttpProvider, read_body
from tokenomy.providers.sse import ended_early, json_events
from tokenomy.providers.upstream_client import UpstreamResponse

_MESSAGES = frozenset({"anthropic"})
#: Client headers an Anthropic upstream gets as they are on native calls.
FORWARDED_HEADERS = ("anthropic-beta",)


def forwarded_headers(headers: dict[str, str]) -> dict[str, str]:
    """The client's headers that go upstream unchanged (beta flags)."""
    return {name: headers[name] for name in FORWARDED_HEADERS if headers.get(name)}


class AnthropicProvider(HttpProvider):
    """Forward chat requests to an Anthropic Messages API endpoint."""

    def native_wires(self, deployment: Deployment) -> frozenset[str]:
        """Messages API requests go upstream as they are."""
        return _MESSAGES

    async def send_native(self, ctx: CallContext, deployment: Deployment) -> Response:
        """POST the client's Messages request as it is (model id swapped; beta headers kept)."""
        assert ctx.native is not None
        native = {**ctx.native.body, "model": deployment.model}
        if ctx.prompt_cache is not None:  # breakpoints the optimize stage planned (none where the client set its own)
            native = ctx.prompt_cache.apply(native)
        url = f"{deployment.base_url}/v1/messages"
        resp = await self._pool.post(
            url, orjson.dumps(native), deployment, forwarded_headers(ctx.headers), stream=ctx.stream
        )
        if ctx.stream:
            return Stream(_native_events(resp, ctx, deployment.label), resp.close)
        raw = await read_body(resp, deployment)
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or message.get("type") != "message":
            raise upstream_errors.stream_error(
                "Upstream returned a body that is not an Anthropic message.", deployment.label
            )
        return Completion(message, Usage.from_anthropic(message.get("usage")), raw)

    async def count_tokens(self, body: dict[str, Any], headers: dict[str, str], deployment: Deployment) -> int:
        """``input_tokens`` from the upstream's ``/v1/messages/count_tokens`` (exact)."""
        url = f"{deployment.base_url}/v1/messages/count_tokens"
        data = orjson.dumps({**body, "model": deployment.model})
        resp = await self._pool.post(url, data, deployment, forwarded_headers(headers))
        raw = await read_body(resp, deployment)
        try:
            count = orjson.loads(raw)["input_tokens"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            count = None
        if not isinstance(count, int):
            raise upstream_errors.stream_error("Upstream returned no token count.", deployment.label)
        return count

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
        resp = await self._pool.post(url, orjson.dumps(body), deployment, stream=ctx.stream)
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
    resp: UpstreamResponse, translator: translate.AnthropicStreamTranslator, label: str
) -> AsyncIterator[dict[str, Any]]:
    stopped = False
    try:
        async with aclosing(json_events(resp, label)) as events:
            async for kind, payload in events:
                stopped = stopped or kind == "message_stop"
                for chunk in translator.feed(kind, payload):
                    yield chunk
    except translate.UpstreamStreamError as exc:
        raise upstream_errors.stream_error(f"Upstream stream failed: {exc}", label) from None
    if not stopped:
        raise ended_early(label)


async def _native_events(resp: UpstreamResponse, ctx: CallContext, label: str) -> AsyncIterator[dict[str, Any]]:
    """Messages API events as they come; notes the first token and the usage on ``ctx``."""
    usage: dict[str, Any] = {}
    stopped = False
    async with aclosing(json_events(resp, label)) as events:
        async for kind, payload in events:
            if kind == "message_start":
                usage.update((payload.get("message") or {}).get("usage") or {})
            elif kind == "content_block_delta":
                ctx.mark_first_token()
            elif kind == "message_delta":
                usage.update(payload.get("usage") or {})
            elif kind == "message_stop":
                stopped = True
                ctx.usage = Usage.from_anthropic(usage) or ctx.usage
            elif kind == "error":
                error = payload.get("error")
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise upstream_errors.stream_error(f"Upstream stream failed: {message}", label)
            yield payload
    if not stopped:
        raise ended_early(label)
