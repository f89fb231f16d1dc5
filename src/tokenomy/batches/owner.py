"""The stage chain batch requests run through: the gateway's own, with the key check replaced.

A batch was authenticated when it was created; its requests run later, with no client and no
key on hand. The owner stage sets the batch's tenant and key name instead of authenticating,
then applies the tenant's budgets like the guard stage does. Everything else (cache, routing,
ledger) is the same pipeline live requests use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenomy.budgets.service import BudgetService
from tokenomy.pipeline.chain import Handler, Stage, build_chain
from tokenomy.pipeline.context import CallContext, Response
from tokenomy.pipeline.guard import GuardStage

if TYPE_CHECKING:
    from tokenomy.gateway import Gateway


class OwnerStage:
    """Budgets for a request whose tenant the batch already established (``ctx.tenant``)."""

    name = "guard"

    def __init__(self, budgets: BudgetService | None) -> None:
        self._budgets = budgets

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        if self._budgets is None:
            return await call_next(ctx)
        original = await self._budgets.admit(ctx, None)
        if original is None:
            return await call_next(ctx)
        try:
            return await call_next(ctx)
        finally:
            self._budgets.note_downgrade(ctx, original)


def batch_chain(gw: Gateway) -> Handler:
    """The gateway's chain with :class:`OwnerStage` in place of the guard."""
    owner = OwnerStage(gw.access.budgets)
    stages: list[Stage] = [owner if isinstance(stage, GuardStage) else stage for stage in gw.stages]
    return build_chain(stages, gw.terminal)
