"""I/O for OpenAI-compatible upstreams: one pooled upstream client per gateway process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from tokenomy.config.models import Deployment
from tokenomy.pipeline.context import PASSTHROUGH, CallContext, Completion, Response, Stream, Usage
from tokenomy.providers import upstream_errors
from tokenomy.providers.http_pool import HttpProvider, read_body
from tokenomy.providers.openai import passthrough, translate
from tokenomy.providers.sse import SseSplitter, ended_early, json_events
from tokenomy.providers.upstream_client import UpstreamResponse, UpstreamTransportError

log = logging.getLogger("tokenomy.providers.openai")


_RESPONSES = frozenset({"responses"})
_NOTHING: frozenset[str] = frozenset()


class OpenAIProvider(HttpProvider):
    """Forward requests to any OpenAI-compatible server."""

    stream_options = True  # the host takes ``stream_options`` (a preset may say it does not)

    def url(self, deployment: Deployment, path: str) -> str:
        """The upstream URL of an endpoint path such as ``/chat/completions``."""
        return f"{deployment.base_url}{path}"

    def native_wires(self, deployment: Deployment) -> frozenset[str]:
        """The Responses API, unless the deployment says its server only has chat completions."""
        return _RESPONSES if deployment.responses_api == "native" else _NOTHING

    async def send_native(self, ctx: CallContext, deployment: Deployment) -> Response:
        """POST the client's Responses API request upstream as it is (only the model id swapped)."""
        assert ctx.native is not None
        url = self.url(deployment, "/responses")
        data = orjson.dumps({**ctx.native.body, "model": deployment.model})
        resp = await self._pool.post(url, data, deployment, stream=ctx.stream)
        if ctx.stream:
            _expect_event_stream(resp, deployment)
            return Stream(_response_events(resp, ctx, deployment.label), resp.close)
        raw = await read_body(resp, deployment)
        try:
            body = translate.parse_response(raw)
        except translate.MalformedUpstream as exc:
            raise upstream_errors.stream_error(str(exc), deployment.label) from None
        return Completion(body, Usage.from_responses(body.get("usage")), raw)

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        """``Authorization: Bearer`` when the deployment has a key."""
        key = deployment.api_key.resolve() if deployment.api_key is not None else None
        return {"authorization": f"Bearer {key}"} if key else {}

    async def send(self, ctx: CallContext, deployment: Deployment) -> Response:
        """POST the request upstream; a stream for ``stream: true``, else a whole completion."""
        url = self.url(deployment, translate.PATHS[ctx.endpoint])
        if ctx.endpoint in PASSTHROUGH:
            return await passthrough.forward(self._pool, url, ctx, deployment)
        data = translate.request_body(ctx.body, deployment.model, ctx.stream, self.stream_options)
        resp = await self._pool.post(url, data, deployment, stream=ctx.stream)
        if ctx.stream:
            _expect_event_stream(resp, deployment)
            return Stream(_chunks(resp, deployment.label), resp.close)
        raw = await read_body(resp, deployment)
        try:
            body = translate.parse_response(raw)
        except translate.MalformedUpstream as exc:
            raise upstream_errors.stream_error(str(exc), deployment.label) from None
        return Completion(body, Usage.from_openai(body.get("usage")), raw)


def _expect_event_stream(resp: UpstreamResponse, deployment: Deployment) -> None:
    """A 502 (and the connection released) when a streaming request got something else back."""
    if not resp.content_type.startswith("text/event-stream"):
        resp.release()
        raise upstream_errors.stream_error(
            f"Upstream answered a streaming request with {resp.content_type!r}, not an event stream.",
            deployment.label,
        )


async def _chunks(resp: UpstreamResponse, label: str) -> AsyncIterator[dict[str, Any]]:
    finished = done = False
    splitter = SseSplitter()  # inline, not through iter_sse: one generator fewer to wake per event
    try:
        async for piece in resp.chunks():
            for _event, data in splitter.feed(piece):
                chunk = translate.parse_chunk(data)
                if chunk is None:  # [DONE]: a clean end only if the answer said how it finished
                    done = True
                    break
                finished = finished or translate.is_final(chunk)
                yield chunk
            if done:
                break
        else:
            for _event, data in splitter.close():
                chunk = translate.parse_chunk(data)
                if chunk is None:
                    break
                finished = finished or translate.is_final(chunk)
                yield chunk
        if not finished:
            raise upstream_errors.stream_error("Upstream stream ended before the answer was complete.", label)
    except translate.MalformedUpstream as exc:
        raise upstream_errors.stream_error(str(exc), label) from None
    except UpstreamTransportError as exc:
        raise upstream_errors.from_read_exception(exc, label) from None
    finally:
        resp.close()


async def _response_events(resp: UpstreamResponse, ctx: CallContext, label: str) -> AsyncIterator[dict[str, Any]]:
    """Responses API events as they come; notes the first token and the final usage on ``ctx``."""
    finished = False
    async with aclosing(json_events(resp, label)) as events:
        async for kind, event in events:
            if kind == "response.output_text.delta" or kind == "response.function_call_arguments.delta":
                ctx.mark_first_token()
            elif kind in ("response.completed", "response.incomplete"):
                finished = True
                ctx.usage = Usage.from_responses((event.get("response") or {}).get("usage")) or ctx.usage
            elif kind in ("error", "response.failed"):
                error = event.get("error") or (event.get("response") or {}).get("error") or event
                message = error.get("message") if isinstance(error, dict) else None
                raise upstream_errors.stream_error(f"Upstream reported an error mid-stream: {message}", label)
            yield event
    if not finished:
        raise ended_early(label)
