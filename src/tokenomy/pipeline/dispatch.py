"""The ``dispatch`` stage (innermost): hand the request to the chosen deployment's provider.

When the request arrived in a wire format the provider speaks natively (``ctx.native``), the
provider gets it untranslated (``send_native``); otherwise it gets the OpenAI translation in
``ctx.body``, unless the translation lost something, which is a 400 naming the field.
"""

from __future__ import annotations

from tokenomy.errors import GatewayError, invalid_request
from tokenomy.pipeline.context import CallContext, Response
from tokenomy.providers.base import Provider, speaks_natively


class Dispatcher:
    """The chain's terminal handler: ``provider.send(ctx, deployment)`` (or ``send_native``)."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    async def __call__(self, ctx: CallContext) -> Response:
        deployment = ctx.deployment
        if deployment is None:  # pragma: no cover - the route stage always sets it
            raise GatewayError(500, "no deployment was chosen", "server_error")
        provider = self._providers[deployment.provider]
        native = ctx.native
        if native is not None:
            if speaks_natively(provider, native.wire, deployment):
                return await provider.send_native(ctx, deployment)  # type: ignore[attr-defined, no-any-return]
            if native.problems:
                param, message = native.problems[0]
                raise invalid_request(
                    f"{param}: {message} (the model {ctx.model!r} is served through a translation to chat completions "
                    f"by {deployment.label!r}).",
                    param=param,
                    code="unsupported_parameter",
                )
        return await provider.send(ctx, deployment)
