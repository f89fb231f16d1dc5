"""The ``dispatch`` stage (innermost): hand the request to the chosen deployment's provider."""

from __future__ import annotations

from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import CallContext, Response
from tokenomy.providers.base import Provider


class Dispatcher:
    """The chain's terminal handler: ``provider.send(ctx, deployment)``."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    async def __call__(self, ctx: CallContext) -> Response:
        deployment = ctx.deployment
        if deployment is None:  # pragma: no cover - the route stage always sets it
            raise GatewayError(500, "no deployment was chosen", "server_error")
        return await self._providers[deployment.provider].send(ctx, deployment)
