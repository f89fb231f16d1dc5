"""The stage chain: ``record -> guard -> [cache -> optimize] -> route -> dispatch``.

Every stage has the same shape: it receives the call context and the next handler, and returns
the response. Building the chain once at start-up turns it into nested closures, so the request
path costs one call per stage and no lookups.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from tokenomy.pipeline.context import CallContext, Response

Handler = Callable[[CallContext], Awaitable[Response]]


class Stage(Protocol):
    """One step of the request path."""

    name: str

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        """Handle ``ctx``, usually by annotating it and awaiting ``call_next(ctx)``."""


def build_chain(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Compose ``stages`` (outermost first) around ``terminal``."""
    handler = terminal
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, call_next: Handler) -> Handler:
    async def run(ctx: CallContext) -> Response:
        return await stage(ctx, call_next)

    run.__qualname__ = f"stage:{stage.name}"
    return run
