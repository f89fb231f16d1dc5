"""Per-token prices of the deployments named in the ledger, from the config (as the gateway prices them)."""

from __future__ import annotations

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.pricing.prices import UNPRICED, PriceBook, TokenPrice, lookup


class Prices:
    """Prices by deployment label and by logical model name."""

    def __init__(self, config: GatewayConfig) -> None:
        self._book = PriceBook()
        self._by_label: dict[str, Deployment] = {}
        self._by_model: dict[str, Deployment] = {}
        for model in config.models:
            for name in (model.name, *model.aliases):
                self._by_model[name] = model.deployments[0]
            for dep in model.deployments:
                self._by_label[dep.label] = dep

    def for_deployment(self, label: str | None, model: str) -> TokenPrice | None:
        """The price of a ledger row's deployment (else its model's first deployment); ``None`` if unknown."""
        dep = self._by_label.get(label or "") or self._by_model.get(model)
        if dep is not None:
            price = self._book.price(dep)
        elif label and "/" in label:
            provider, _, name = label.partition("/")
            price = lookup(name, provider) or UNPRICED
        else:
            price = UNPRICED
        return None if price is UNPRICED or (price.input == 0 and price.output == 0) else price

    def models(self) -> dict[str, TokenPrice]:
        """Every logical model with a known price (candidates for a cheaper model)."""
        out = {}
        for name, dep in self._by_model.items():
            price = self.for_deployment(dep.label, name)
            if price is not None:
                out[name] = price
        return out
