"""How a report's requests were priced, and what the same tokens would cost on a hosted model."""

from __future__ import annotations

from typing import Any

from tokenomy.pricing.prices import lookup, price_kind
from tokenomy.reports.model import Comparison, PriceRow

KIND_ORDER = ("configured", "database", "default", "unknown")


def price_summary(rows: list[tuple[Any, ...]], compare_with: str | None) -> tuple[list[PriceRow], Comparison | None]:
    """Rows of ``(price_source, is_embedding, requests, cost, prompt_tokens, completion_tokens)``."""
    kinds: dict[str, list[float]] = {}
    prompt = completion = 0
    for source, is_embedding, requests, cost, prompt_tokens, completion_tokens in rows:
        entry = kinds.setdefault(price_kind(str(source)), [0, 0.0])
        entry[0] += int(requests or 0)
        entry[1] += float(cost or 0.0)
        if not int(is_embedding or 0):
            prompt += int(prompt_tokens or 0)
            completion += int(completion_tokens or 0)
    prices = [PriceRow(kind, int(kinds[kind][0]), kinds[kind][1]) for kind in KIND_ORDER if kind in kinds]
    if not compare_with:
        return prices, None
    price = lookup(compare_with, "openai")
    cost = None if price is None else price.cost(prompt, completion)
    return prices, Comparison(compare_with, prompt, completion, cost)
