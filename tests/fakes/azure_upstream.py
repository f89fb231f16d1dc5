"""A fake Azure OpenAI resource: OpenAI's wire format at Azure's paths, with Azure's credentials.

Deployments API: ``/openai/deployments/{name}/chat/completions?api-version=...`` (a missing
``api-version`` is a 404, as Azure answers); v1 API: ``/openai/v1/chat/completions`` and
``/openai/v1/responses``. Credentials: ``api-key: <key>`` or ``Authorization: Bearer <entra token>``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from tests.fakes.base import json_response
from tests.fakes.openai_responses import responses
from tests.fakes.openai_upstream import OpenAIFake, _chat, _embeddings

ENTRA_TOKEN = "entra-token-fake"


class AzureFake(OpenAIFake):
    """Fake Azure OpenAI; ``url`` is the resource endpoint (``https://NAME.openai.azure.com``)."""

    base_path = ""

    def add_routes(self, app: web.Application) -> None:
        for kind, handler in (("chat/completions", _chat), ("embeddings", _embeddings)):
            app.router.add_post(f"/openai/deployments/{{deployment}}/{kind}", _versioned(handler))
            app.router.add_post(f"/openai/v1/{kind}", handler)
        app.router.add_post("/openai/v1/responses", responses)

    def check_auth(self, request: web.Request) -> web.StreamResponse | None:
        key = request.headers.get("api-key")
        bearer = request.headers.get("Authorization")
        if (key is not None and key == self.api_key) or bearer == f"Bearer {ENTRA_TOKEN}":
            return None
        message = "Access denied due to invalid subscription key or wrong API endpoint."
        return json_response({"error": {"code": "401", "message": message}}, 401)


def _versioned(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not request.query.get("api-version"):
            return json_response({"error": {"code": "404", "message": "Resource not found"}}, 404)
        response: web.StreamResponse = await handler(request)
        return response

    return wrapped


async def start_azure_fake(**opts: Any) -> AzureFake:
    """Start an :class:`AzureFake`."""
    return await AzureFake(**opts).start()
