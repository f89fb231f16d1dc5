"""Budget use on the dashboard: spend against each limit, an alert from 80% of it, tenants see only theirs.

Real traffic through the gateway spends a key's budget (with ``max_tokens=1`` the fake upstream reports 1 prompt
and 1 completion token: $0.003 a request on ``fast``); the panel is checked through the API and in Chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from tests.budgets.helpers import ADMIN_KEY, gateway_config
from tests.dashboard.rig import call
from tests.dashboard.test_browser import SHOTS, Page, browser
from tests.fakes.openai_upstream import start_openai_fake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.keys.record import hash_key

__all__ = ["browser"]  # the fixture, imported for pytest

AMBER, GREEN = "sk-amber-budget", "sk-green-budget"
HI = [{"role": "user", "content": "hi"}]
# a request reserves $0.010 (8 counted prompt tokens, 1 completion token) and spends $0.003: 14 requests
# fit under a hard $0.05 (the last is admitted at $0.039 + $0.010) and spend $0.042, 84% of it
LIMIT, REQUESTS, EACH = 0.05, 14, 0.003


@pytest.fixture(scope="module")
async def budget_gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningGateway]:
    home = tmp_path_factory.mktemp("budget-panel")
    fake = await start_openai_fake()
    keys = [
        {"name": "amber-app", "sha256": hash_key(AMBER), "tenant": "amber", "budget": {"usd_per_day": LIMIT}},
        {"name": "green-app", "sha256": hash_key(GREEN), "tenant": "green", "budget": {"usd_per_day": 10}},
    ]
    rules = {"rules": [{"scope": "team", "name": "amber", "usd_per_month": 100}]}
    try:
        async with running_gateway(gateway_config(fake.base_url, home, keys=keys, budgets=rules)) as gw:
            for key, n in ((AMBER, REQUESTS), (GREEN, 1)):
                client = openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=0)
                async with client:
                    for _ in range(n):
                        await client.chat.completions.create(model="fast", messages=HI, max_tokens=1)
            await gw.flush_ledger()
            yield gw
    finally:
        await fake.close()


async def test_budget_use_flags_the_one_near_its_limit(budget_gw: RunningGateway) -> None:
    status, body = await call(budget_gw, "/dashboard/api/budgets", ADMIN_KEY)
    assert status == 200 and body["alert_share"] == 0.8
    rows = {(r["scope"], r["name"], r["period"]): r for r in body["data"]}
    amber = rows[("key", "amber-app", "day")]
    assert amber["spent_usd"] == pytest.approx(REQUESTS * EACH)
    assert amber["limit_usd"] == LIMIT and amber["action"] == "hard"
    assert amber["used"] == pytest.approx(REQUESTS * EACH / LIMIT) and amber["alert"] == "near"
    green = rows[("key", "green-app", "day")]
    assert green["spent_usd"] == pytest.approx(EACH) and green["alert"] is None
    team = rows[("team", "amber", "month")]
    assert team["spent_usd"] == pytest.approx(REQUESTS * EACH) and team["alert"] is None
    assert body["data"][0] == amber  # the most used first


async def test_a_tenant_sees_only_its_own_budgets(budget_gw: RunningGateway) -> None:
    _, amber = await call(budget_gw, "/dashboard/api/budgets", AMBER)
    assert {(r["scope"], r["name"]) for r in amber["data"]} == {("key", "amber-app"), ("team", "amber")}
    _, green = await call(budget_gw, "/dashboard/api/budgets", GREEN)
    assert {(r["scope"], r["name"]) for r in green["data"]} == {("key", "green-app")}
    status, _ = await call(budget_gw, "/dashboard/api/budgets", None)
    assert status == 401
    status, _ = await call(budget_gw, "/dashboard/api/budgets?tenant=green", AMBER)
    assert status == 400


async def test_the_overview_shows_the_alert_and_latency_over_time(budget_gw: RunningGateway, browser: Any) -> None:
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = Page(await context.new_page())
    await page.page.goto(budget_gw.url + "/dashboard")
    await page.page.fill("#key", AMBER)
    await page.page.click("#login-form button")
    await page.loaded("overview")
    alert = await page.page.locator("#budget-alerts .alert.near").all_inner_texts()
    assert len(alert) == 1 and "key amber-app" in alert[0] and "84.0%" in alert[0]
    assert await page.page.locator("#budget-use-table tbody tr").count() == 2
    # one point per time bucket of the latency chart: p50 and p95 of latency (no streams: no TTFT line)
    assert await page.page.locator("#latency-chart svg").count() == 1
    legend = await page.page.locator("#latency-chart .legend").inner_text()
    assert "latency p50" in legend and "latency p95" in legend and "TTFT" not in legend
    await page.page.locator("#budget-panel").scroll_into_view_if_needed()
    await page.page.screenshot(path=str(SHOTS / "budgets.png"), full_page=True)
    assert page.errors == []
    await context.close()
