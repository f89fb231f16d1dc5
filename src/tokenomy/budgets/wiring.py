"""Assembling keys, rate limits and budgets for a gateway; nothing is built that the config does not use."""

from __future__ import annotations

import asyncio
import logging

from tokenomy.budgets.cost import CostModel
from tokenomy.budgets.service import BudgetService
from tokenomy.config.models import GatewayConfig
from tokenomy.keys.service import KeyService, key_store_for
from tokenomy.pipeline.context import CallContext
from tokenomy.pipeline.record import Sink
from tokenomy.pipeline.route import ModelTable
from tokenomy.pricing.prices import PriceBook
from tokenomy.state.shared_memory import SharedRateLimiter, worker_state

log = logging.getLogger("tokenomy.budgets")


class SettlingSink:
    """Settles a finished request's budget reservation, then hands it to the ledger."""

    def __init__(self, inner: Sink, budgets: BudgetService) -> None:
        self._inner = inner
        self._budgets = budgets

    def submit(self, ctx: CallContext) -> None:
        """Settle (never blocks: Redis settlements go in the background), then record."""
        self._budgets.settle(ctx)
        self._inner.submit(ctx)


class Access:
    """Keys (config file and store), per-key rate limits and budgets of one gateway."""

    def __init__(self, config: GatewayConfig, table: ModelTable, ledger: object = None) -> None:
        self.config = config
        managed = config.auth.admin_key is not None
        self.keys = KeyService(
            config.auth,
            config.model_names(),
            key_store_for(config.auth.key_store) if managed else None,
            # several workers: rate limits share their memory, USD budgets only Redis
            budgets_shared=config.budgets.store != "memory" or worker_state() is None,
        )
        self.budgets: BudgetService | None = None
        if config.budgets.rules or self.keys.any_limited:
            # the ledger's price book: the same prices (and measured self-hosted throughput) as the ledger
            prices = getattr(getattr(ledger, "enricher", None), "prices", None)
            self.prices = prices if isinstance(prices, PriceBook) else PriceBook(config.local.cost_per_hour)
            cost = CostModel(table, self.prices, config.budgets.default_max_tokens, config.local.generation.model_path)
            self.budgets = _budget_service(config, cost)

    def sink(self, inner: Sink) -> Sink:
        """The record stage's sink: the ledger itself when no budget or limit can apply."""
        return inner if self.budgets is None else SettlingSink(inner, self.budgets)

    async def open(self) -> None:
        """Open the stores; prices and tokenizers are loaded off the request path."""
        await self.keys.open()
        if self.budgets is not None:
            await self.budgets.store.open()
            await asyncio.to_thread(self._warm, self.budgets)

    def _warm(self, budgets: BudgetService) -> None:
        """Resolve every deployment's price and load its tokenizer, so the first request pays neither."""
        for model in self.config.models:
            for dep in model.deployments:
                self.prices.price(dep)
                budgets.cost.encoder(dep)("warm up")

    async def close(self) -> None:
        """Close the stores (pending settlements are sent first)."""
        if self.budgets is not None:
            await self.budgets.close()
        await self.keys.close()


def _budget_service(config: GatewayConfig, cost: CostModel) -> BudgetService:
    budgets = config.budgets
    if budgets.store == "memory":
        # a worker of `serve --workers`: per-key rate limits in the memory the workers share
        state = worker_state()
        return BudgetService(budgets, cost, limiter=SharedRateLimiter(state) if state is not None else None)
    from tokenomy.budgets.store_redis import RedisBudgetStore
    from tokenomy.keys.limits import RedisRateLimiter

    assert budgets.redis_url is not None  # the config validates this
    url = budgets.redis_url.resolve()
    if not url:
        raise ValueError(f"the budgets redis_url variable ${{{budgets.redis_url.env}}} is not set")
    store = RedisBudgetStore(url, budgets.reservation_ttl_s)
    return BudgetService(budgets, cost, store, RedisRateLimiter(store.redis))
