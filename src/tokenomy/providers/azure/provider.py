"""Azure OpenAI Service: OpenAI's wire format, Azure's URLs and credentials.

- With ``api_version`` set, the deployments API:
  ``{base_url}/openai/deployments/{model}/chat/completions?api-version=...`` (``model`` is the
  Azure *deployment* name).
- Without it, Azure's v1 API: ``{base_url}/openai/v1/chat/completions`` with the model in the
  body; the Responses API goes there natively too.
- ``api_key`` is sent as ``api-key``; with ``entra_id: true`` it is a Microsoft Entra ID access
  token sent as ``Authorization: Bearer``.

Requests and answers are OpenAI's, so the OpenAI provider's translation and stream handling apply.
"""

from __future__ import annotations

from urllib.parse import quote

from tokenomy.config.models import Deployment
from tokenomy.providers.openai.provider import OpenAIProvider

_RESPONSES = frozenset({"responses"})
_NOTHING: frozenset[str] = frozenset()


class AzureOpenAIProvider(OpenAIProvider):
    """OpenAI's protocol at an Azure OpenAI resource."""

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        """``api-key``, or ``Authorization: Bearer`` for an Entra ID token."""
        key = deployment.api_key.resolve() if deployment.api_key is not None else None
        if not key:
            return {}
        return {"authorization": f"Bearer {key}"} if deployment.entra_id else {"api-key": key}

    def url(self, deployment: Deployment, path: str) -> str:
        """The deployments API URL (with ``api-version``), or the v1 API URL."""
        if deployment.api_version:
            name = quote(deployment.model, safe="")
            return f"{deployment.base_url}/openai/deployments/{name}{path}?api-version={quote(deployment.api_version)}"
        return f"{deployment.base_url}/openai/v1{path}"

    def native_wires(self, deployment: Deployment) -> frozenset[str]:
        """The Responses API on the v1 API (unless ``responses_api: chat``)."""
        return _RESPONSES if not deployment.api_version and deployment.responses_api == "native" else _NOTHING
