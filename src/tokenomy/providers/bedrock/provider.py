"""I/O for AWS Bedrock: Converse and ConverseStream, signed with SigV4 through ``botocore``.

``POST {base_url}/model/{model}/converse`` (or ``/converse-stream``, answered as an AWS event
stream), where ``base_url`` defaults to ``https://bedrock-runtime.{region}.amazonaws.com``.
Credentials: ``api_key`` as a Bedrock API key (``Authorization: Bearer``), or else the standard
AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, profiles,
instance roles) with each request signed by ``botocore``'s SigV4. The translation itself lives
in :mod:`.translate`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from tokenomy.config.models import Deployment
from tokenomy.errors import GatewayError, invalid_request
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.providers import upstream_errors
from tokenomy.providers.bedrock import translate
from tokenomy.providers.http_pool import HttpProvider, read_body
from tokenomy.providers.upstream_client import UpstreamResponse, UpstreamTransportError


def base_url(deployment: Deployment) -> str:
    """The runtime endpoint of the deployment's region (or its ``base_url``)."""
    return deployment.base_url or f"https://bedrock-runtime.{deployment.region}.amazonaws.com"


class BedrockProvider(HttpProvider):
    """Chat on Bedrock models through Converse."""

    _credentials: Any = None

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        """A Bedrock API key as a bearer token; otherwise each request is signed (see ``_signed``)."""
        key = deployment.api_key.resolve() if deployment.api_key is not None else None
        return {"authorization": f"Bearer {key}"} if key else {}

    async def _signed(self, url: str, data: bytes, deployment: Deployment) -> dict[str, str]:
        """SigV4 headers for this request (none when the deployment has an API key)."""
        if deployment.api_key is not None:
            return {}
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        if self._credentials is None:  # the AWS chain may read files or ask the instance: off the loop, once
            import botocore.session

            self._credentials = await asyncio.to_thread(botocore.session.get_session().get_credentials)
        if self._credentials is None:
            raise GatewayError(502, "No AWS credentials for Bedrock (set AWS_ACCESS_KEY_ID/..., or api_key).",
                               "upstream_error", code="upstream_auth")  # fmt: skip
        request = AWSRequest(method="POST", url=url, data=data, headers={"content-type": "application/json"})
        SigV4Auth(self._credentials.get_frozen_credentials(), "bedrock", deployment.region).add_auth(request)
        return {k: v for k, v in request.headers.items() if k.lower() != "content-type"}

    async def send(self, ctx: CallContext, deployment: Deployment) -> Response:
        """Translate, sign, call Converse (or ConverseStream), translate back."""
        try:
            if ctx.endpoint is not Endpoint.CHAT:
                raise translate.UnsupportedParameter("model", f"Bedrock Converse has no {ctx.endpoint.value} endpoint.")
            body = orjson.dumps(translate.to_converse(ctx.body))
        except translate.UnsupportedParameter as exc:
            raise invalid_request(str(exc), param=exc.param, code="unsupported_parameter") from None
        action = "converse-stream" if ctx.stream else "converse"
        url = f"{base_url(deployment)}/model/{quote(deployment.model, safe='')}/{action}"
        signed = await self._signed(url, body, deployment)
        # the path exactly as signed
        resp = await self._pool.post(url, body, deployment, signed, exact=True, stream=ctx.stream)
        if ctx.stream:
            translator = translate.ConverseStreamTranslator(ctx.model, ctx.request_id)
            return Stream(_chunks(resp, translator, deployment.label), resp.close)
        raw = await read_body(resp, deployment)
        try:
            result = translate.from_converse(orjson.loads(raw), ctx.model, ctx.request_id)
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            raise upstream_errors.stream_error("Upstream returned a body that is not a Converse answer.",
                                               deployment.label) from None  # fmt: skip
        return Completion(result, Usage.from_openai(result.get("usage")))


async def _chunks(
    resp: UpstreamResponse, translator: translate.ConverseStreamTranslator, label: str
) -> AsyncIterator[dict[str, Any]]:
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    try:
        async for data in resp.chunks():
            buffer.add_data(data)
            for message in buffer:
                headers = message.headers
                if headers.get(":message-type") != "event":
                    error = headers.get(":exception-type") or headers.get(":error-code") or "error"
                    text = orjson.loads(message.payload).get("message") if message.payload else ""
                    raise upstream_errors.stream_error(f"Upstream stream failed: {error}: {text}", label)
                payload = orjson.loads(message.payload) if message.payload else {}
                for chunk in translator.feed(str(headers.get(":event-type")), payload):
                    yield chunk
        if not translator.finished:
            raise upstream_errors.stream_error("Upstream stream ended before the answer was complete.", label)
    except (ParserError, orjson.JSONDecodeError):
        raise upstream_errors.stream_error("Upstream sent a malformed event stream.", label) from None
    except UpstreamTransportError as exc:
        raise upstream_errors.from_read_exception(exc, label) from None
    finally:
        resp.close()
