"""The ``guard`` stage: virtual API keys, compared by SHA-256 hash, mapped to a tenant (team);
then the key's RPM/TPM limits and every budget that applies (``tokenomy.budgets``).

With no keys configured (and no admin key) the gateway is open (the embedded local default).
With no budget and no limited key, the stage does nothing beyond the key lookup.
"""

from __future__ import annotations

from tokenomy.budgets.service import BudgetService
from tokenomy.config.models import AuthConfig
from tokenomy.errors import GatewayError
from tokenomy.keys.record import KeyRecord, hash_key
from tokenomy.keys.service import KeyService
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Response

__all__ = ["GuardStage", "hash_key", "presented_key"]


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer`` (OpenAI SDK) or ``x-api-key`` (Anthropic SDK)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or None


class GuardStage:
    """Authenticate the caller, set the tenant, apply its limits and budgets."""

    name = "guard"

    def __init__(self, auth: AuthConfig, keys: KeyService | None = None, budgets: BudgetService | None = None) -> None:
        self._keys = keys or KeyService(auth, [], None)
        self._budgets = budgets
        self.enabled = self._keys.enabled

    async def authenticate(self, headers: dict[str, str]) -> KeyRecord:
        """The caller's key (401 when missing, unknown or revoked); for endpoints outside the chain."""
        return await self._keys.authenticate(presented_key(headers))

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        key = None
        if self.enabled:
            # the HTTP edge has usually checked the key already, before reading the body
            key = ctx.key if ctx.key is not None else await self._keys.authenticate(presented_key(ctx.headers))
            ctx.api_key_name = key.name
            ctx.tenant = key.tenant
            if key.models and ctx.model not in key.models:
                raise GatewayError(
                    403,
                    f"key {key.name!r} may not use model {ctx.model!r}; allowed: {', '.join(key.models)}",
                    "permission_error",
                    param="model",
                    code="model_not_allowed",
                )
        if self._budgets is None:
            return await call_next(ctx)
        original = await self._budgets.admit(ctx, key)
        if original is None:
            return await call_next(ctx)
        try:
            return await call_next(ctx)
        finally:
            self._budgets.note_downgrade(ctx, original)
