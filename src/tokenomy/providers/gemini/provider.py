"""I/O for Google Gemini (``generateContent``, ``streamGenerateContent``, ``batchEmbedContents``).

- Generative Language API (the default ``base_url``: https://generativelanguage.googleapis.com/v1beta):
  ``{base_url}/models/{model}:generateContent`` with the key in ``x-goog-api-key``.
- Vertex AI: a ``base_url`` such as
  ``https://us-central1-aiplatform.googleapis.com/v1/projects/P/locations/us-central1``: then
  ``{base_url}/publishers/google/models/{model}:generateContent``, and ``api_key`` holds an OAuth
  access token sent as ``Authorization: Bearer``.

The translation itself lives in :mod:`.translate`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import orjson

from tokenomy.config.models import Deployment
from tokenomy.errors import invalid_request
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.providers import upstream_errors
from tokenomy.providers.gemini import translate
from tokenomy.providers.http_pool import HttpProvider, read_body
from tokenomy.providers.sse import ended_early, json_events
from tokenomy.providers.upstream_client import UpstreamResponse

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


def is_vertex(deployment: Deployment) -> bool:
    """Whether the deployment is on Vertex AI (a project/location ``base_url``)."""
    return "/projects/" in (deployment.base_url or "")


class GeminiProvider(HttpProvider):
    """Chat and embeddings on Gemini models."""

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        """``x-goog-api-key`` (Generative Language API) or ``Authorization: Bearer`` (Vertex AI)."""
        key = deployment.api_key.resolve() if deployment.api_key is not None else None
        if not key:
            return {}
        return {"authorization": f"Bearer {key}"} if is_vertex(deployment) else {"x-goog-api-key": key}

    @staticmethod
    def url(deployment: Deployment, method: str) -> str:
        """The URL of ``models/{model}:{method}``."""
        model = quote(deployment.model, safe="")
        if is_vertex(deployment):
            return f"{deployment.base_url}/publishers/google/models/{model}:{method}"
        return f"{deployment.base_url or DEFAULT_BASE_URL}/models/{model}:{method}"

    async def send(self, ctx: CallContext, deployment: Deployment) -> Response:
        """Translate, call Gemini, translate back."""
        try:
            if ctx.endpoint is Endpoint.EMBEDDINGS:
                return await self._embed(ctx, deployment)
            if ctx.endpoint is not Endpoint.CHAT:
                raise translate.UnsupportedParameter("model", f"Gemini models have no {ctx.endpoint.value} endpoint.")
            body = translate.to_gemini_request(ctx.body)
        except translate.UnsupportedParameter as exc:
            raise invalid_request(str(exc), param=exc.param, code="unsupported_parameter") from None
        if ctx.stream:
            url = f"{self.url(deployment, 'streamGenerateContent')}?alt=sse"
            resp = await self._pool.post(url, orjson.dumps(body), deployment, stream=True)
            translator = translate.GeminiStreamTranslator(ctx.model, ctx.request_id)
            return Stream(_chunks(resp, translator, deployment.label), resp.close)
        resp = await self._pool.post(self.url(deployment, "generateContent"), orjson.dumps(body), deployment)
        raw = await read_body(resp, deployment)
        try:
            result = translate.from_gemini_response(orjson.loads(raw), ctx.model, ctx.request_id)
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            message = f"Upstream returned an unexpected body ({exc})."
            raise upstream_errors.stream_error(message, deployment.label) from None
        except ValueError as exc:
            raise upstream_errors.stream_error(str(exc), deployment.label) from None
        return Completion(result, Usage.from_openai(result.get("usage")))

    async def _embed(self, ctx: CallContext, deployment: Deployment) -> Completion:
        body = translate.to_embed_request(ctx.body, deployment.model)
        resp = await self._pool.post(self.url(deployment, "batchEmbedContents"), orjson.dumps(body), deployment)
        raw = await read_body(resp, deployment)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream_errors.stream_error("Upstream returned a body that is not JSON.", deployment.label) from None
        tokens = sum(len(r["content"]["parts"][0]["text"].split()) for r in body["requests"])  # Gemini reports none
        result = translate.from_embed_response(data, ctx.model, tokens, ctx.body.get("encoding_format") == "base64")
        return Completion(result, Usage(prompt_tokens=tokens))


async def _chunks(
    resp: UpstreamResponse, translator: translate.GeminiStreamTranslator, label: str
) -> AsyncIterator[dict[str, Any]]:
    async with aclosing(json_events(resp, label)) as events:
        async for _kind, payload in events:
            if isinstance(payload.get("error"), dict):
                message = payload["error"].get("message")
                raise upstream_errors.stream_error(f"Upstream reported an error mid-stream: {message}", label)
            for chunk in translator.feed(payload):
                yield chunk
    if not translator.finished:
        raise ended_early(label)
    usage = translator.usage_chunk()
    if usage is not None:
        yield usage
