"""The ``route`` stage: resolve the requested model and choose a deployment.

For now it round-robins across a model's deployments. Policies, cascades, the learned router,
health, limits, retries and fallbacks extend this stage in the routing issue.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from tokenomy.config.models import Deployment, GatewayConfig, LogicalModel
from tokenomy.errors import not_found
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Response


class ModelTable:
    """Client-facing model names (and aliases) to their logical models."""

    def __init__(self, config: GatewayConfig) -> None:
        self._models: dict[str, LogicalModel] = {}
        for model in config.models:
            for name in (model.name, *model.aliases):
                self._models[name] = model
        self.names = sorted(self._models)

    def resolve(self, name: str) -> LogicalModel:
        """The logical model called ``name``; 404 listing the available ones otherwise."""
        model = self._models.get(name)
        if model is None:
            raise not_found(
                f"The model {name!r} does not exist on this gateway. Available models: {', '.join(self.names)}.",
                param="model",
                code="model_not_found",
            )
        return model


class RouteStage:
    """Pick the logical model and one of its deployments."""

    name = "route"

    def __init__(self, table: ModelTable) -> None:
        self._table = table
        self._cycles: dict[str, Iterator[Deployment]] = {}

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        model = self._table.resolve(ctx.model)
        ctx.logical_model = model
        ctx.served_model = model.name
        ctx.deployment = self._next_deployment(model)
        ctx.route = "single" if len(model.deployments) == 1 else "round-robin"
        return await call_next(ctx)

    def _next_deployment(self, model: LogicalModel) -> Deployment:
        if len(model.deployments) == 1:
            return model.deployments[0]
        cycle = self._cycles.get(model.name)
        if cycle is None:
            cycle = self._cycles[model.name] = itertools.cycle(model.deployments)
        return next(cycle)
