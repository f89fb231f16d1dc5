"""The budget service without HTTP: estimates, which budgets apply, and the overspend bound."""

from __future__ import annotations

import pytest

from tokenomy.budgets.cost import CostModel
from tokenomy.budgets.service import BudgetService
from tokenomy.config import GatewayConfig, parse_config
from tokenomy.config.budgets import BudgetsConfig, KeyBudget
from tokenomy.errors import GatewayError
from tokenomy.keys.record import KeyRecord
from tokenomy.pipeline.context import CallContext, Endpoint, Usage
from tokenomy.pipeline.route import ModelTable
from tokenomy.pricing.prices import PriceBook

CONFIG = """
models:
  - name: fast
    fallbacks: [pricey]
    deployments:
      - {provider: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini,
         pricing: {input_per_mtok: 1000, output_per_mtok: 2000}}
  - name: pricey
    deployments:
      - {provider: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o,
         pricing: {input_per_mtok: 5000, output_per_mtok: 10000}}
  - name: unpriced
    deployments:
      - {provider: openai, base_url: "http://127.0.0.1:9/v1", model: my-own-model}
"""


def _service(rules: list[dict[str, object]] | None = None, default_max_tokens: int = 100) -> BudgetService:
    config: GatewayConfig = parse_config(CONFIG)
    budgets = BudgetsConfig.model_validate({"rules": rules or [], "default_max_tokens": default_max_tokens})
    cost = CostModel(ModelTable(config), PriceBook(), budgets.default_max_tokens, None)
    return BudgetService(budgets, cost)


def _ctx(model: str = "pricey", endpoint: Endpoint = Endpoint.CHAT, **body: object) -> CallContext:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    if endpoint is Endpoint.EMBEDDINGS:
        body = {"model": model, "input": "hi there"}
    return CallContext(request_id="r", endpoint=endpoint, body=body, model=model, task="t1", tenant="team-a")


def test_estimate_covers_max_tokens_times_n_and_fallbacks() -> None:
    cost = _service().cost
    # 8 prompt tokens ("user", "hi" + OpenAI's per-message overhead); pricey: $0.005 in, $0.01 out per token
    assert cost.estimate(_ctx(max_tokens=10, n=3), "pricey").usd == pytest.approx(8 * 0.005 + 30 * 0.01)
    assert cost.estimate(_ctx(max_completion_tokens=7), "pricey").usd == pytest.approx(8 * 0.005 + 7 * 0.01)
    assert cost.estimate(_ctx(), "pricey").usd == pytest.approx(8 * 0.005 + 100 * 0.01)  # default_max_tokens
    assert cost.estimate(_ctx(max_tokens=10), "fast").usd == pytest.approx(8 * 0.005 + 10 * 0.01)  # its fallback
    assert cost.estimate(_ctx(endpoint=Endpoint.EMBEDDINGS), "pricey").usd == pytest.approx(2 * 0.005)
    assert cost.estimate(_ctx(max_tokens=10), "unpriced").usd == 0.0  # unknown price: $0
    with pytest.raises(GatewayError) as info:
        cost.estimate(_ctx(), "nope")
    assert info.value.status == 404


def test_which_budgets_apply_and_merge() -> None:
    service = _service(
        [
            {"scope": "key", "name": "ci", "usd_per_day": 5},
            {"scope": "team", "name": "*", "usd_per_month": 50},
            {"scope": "task", "name": "other-task", "usd_per_day": 1},
            {"scope": "key", "name": "ci", "usd_per_day": 3, "action": "soft", "downgrade_to": "fast"},
        ]
    )
    key = KeyRecord("key_1", "ci", budget=KeyBudget(usd_per_day=4, usd_per_month=40))
    counters = {c.key.rsplit(":", 1)[0] + ":" + c.period: c for c in service.counters(key, _ctx())}
    assert set(counters) == {"key:ci:day", "key:ci:month", "team:team-a:month"}
    day = counters["key:ci:day"]  # the key's own budget and two rules on the same spend: one counter
    assert (day.hard_usd, day.soft_usd, day.downgrade_to) == (4, 3, "fast")
    assert counters["team:team-a:month"].subject == "team 'team-a'"
    assert service.counters(None, _ctx()) == [counters["team:team-a:month"]]  # no key: key rules don't apply


async def test_overspend_is_bounded_by_what_estimates_missed() -> None:
    """Under-estimates (a provider that bills past max_tokens): spend <= limit + sum of (actual - estimate)."""
    service = _service([{"scope": "team", "name": "team-a", "usd_per_day": 1.0}], default_max_tokens=1)
    admitted: list[CallContext] = []
    for _ in range(100):  # all in flight at once
        ctx = _ctx(model="fast", max_tokens=1)
        try:
            await service.admit(ctx, None)
        except GatewayError as exc:
            assert exc.type == "budget_exceeded"
            continue
        admitted.append(ctx)
    estimate = service.cost.estimate(_ctx(model="fast", max_tokens=1), "fast").usd
    excess = 0.0
    for ctx in admitted:
        ctx.deployment = service.cost.table.resolve("pricey").deployments[0]  # served by the fallback
        ctx.usage = Usage(prompt_tokens=8, completion_tokens=50)
        actual = service.cost.actual(ctx)[0]
        excess += max(0.0, actual - estimate)
        service.settle(ctx)
    [status] = await service.status([])
    assert len(admitted) == int(1.0 / estimate)
    assert status["spent_usd"] > 1.0  # the estimates were too low...
    assert status["spent_usd"] <= 1.0 + excess + 1e-9  # ...and by no more than they missed
    assert status["reserved_usd"] == 0.0


async def test_a_request_never_finished_is_settled_at_its_estimate() -> None:
    rules = [{"scope": "team", "name": "team-a", "usd_per_day": 10.0}]
    config = parse_config(CONFIG)
    budgets = BudgetsConfig.model_validate({"rules": rules, "reservation_ttl_s": 0.01})
    service = BudgetService(budgets, CostModel(ModelTable(config), PriceBook(), 100, None))
    lost = _ctx(model="fast", max_tokens=10)
    await service.admit(lost, None)  # its stream was never read: the record stage never finishes it
    lost.started -= 1.0
    service._sweep_at = 0.0
    await service.admit(_ctx(model="fast", max_tokens=10), None)
    [status] = await service.status([])
    estimate = service.cost.estimate(lost, "fast").usd
    assert status["spent_usd"] == pytest.approx(estimate) and status["reserved_usd"] == pytest.approx(estimate)
    service.settle(lost)  # a late finish changes nothing
    assert (await service.status([]))[0]["spent_usd"] == pytest.approx(estimate)
