"""The ``guard`` stage: virtual API keys, compared by SHA-256 hash, mapped to a tenant.

With no keys configured the gateway is open (the embedded local default). Budgets and per-key
rate limits join this stage later.
"""

from __future__ import annotations

import hashlib

from tokenomy.config.models import AuthConfig, VirtualKey
from tokenomy.errors import GatewayError, authentication_error
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Response


def hash_key(key: str) -> str:
    """The hex SHA-256 of a client key, as stored in the config."""
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer`` (OpenAI SDK) or ``x-api-key`` (Anthropic SDK)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or None


class GuardStage:
    """Authenticate the caller and set the tenant."""

    name = "guard"

    def __init__(self, auth: AuthConfig) -> None:
        self._by_hash: dict[str, VirtualKey] = {}
        for vkey in auth.keys:
            digest = vkey.sha256
            if digest is None and vkey.key is not None:
                secret = vkey.key.resolve()
                digest = hash_key(secret) if secret else None
            if digest is not None:
                self._by_hash[digest] = vkey
        self.enabled = bool(auth.keys)

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        if self.enabled:
            vkey = self._authenticate(ctx.headers)
            ctx.api_key_name = vkey.name
            ctx.tenant = vkey.tenant or vkey.name
            if vkey.models and ctx.model not in vkey.models:
                raise GatewayError(
                    403,
                    f"key {vkey.name!r} may not use model {ctx.model!r}; allowed: {', '.join(vkey.models)}",
                    "permission_error",
                    param="model",
                    code="model_not_allowed",
                )
        return await call_next(ctx)

    def _authenticate(self, headers: dict[str, str]) -> VirtualKey:
        key = presented_key(headers)
        if key is None:
            raise authentication_error(
                "Missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key' for Anthropic clients)."
            )
        # Looked up by hash: timing can reveal nothing about the key itself.
        vkey = self._by_hash.get(hash_key(key))
        if vkey is None:
            raise authentication_error("Incorrect API key provided.")
        return vkey
