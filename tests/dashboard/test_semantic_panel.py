"""Live precision of the semantic cache on the dashboard: audited hits per task and suspended tasks.

The gateway's own estimator holds the counts (audits recorded into it directly: what the cache stage
records after comparing answers); the panel is checked through the API and in Chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import yaml
from tests.budgets.helpers import ADMIN_KEY, gateway_config
from tests.dashboard.rig import call
from tests.dashboard.test_browser import SHOTS, Page, browser
from tests.fakes.openai_upstream import start_openai_fake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.keys.record import hash_key

__all__ = ["browser"]  # the fixture, imported for pytest

TENANT = "sk-semantic-tenant"


@pytest.fixture(scope="module")
async def semantic_gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningGateway]:
    home = tmp_path_factory.mktemp("semantic-panel")
    fake = await start_openai_fake()
    keys = [{"name": "app", "sha256": hash_key(TENANT), "tenant": "acme"}]
    config = yaml.safe_load(gateway_config(fake.base_url, home, keys=keys))
    config["cache"] = {
        "exact": {"path": str(home / "cache.db")},
        "semantic": {"enabled": True, "index_path": str(home / "s.usearch"), "audit_share": 0.25},
    }
    try:
        async with running_gateway(yaml.safe_dump(config)) as gw:
            async with openai.AsyncOpenAI(base_url=gw.v1, api_key=TENANT, max_retries=0) as client:
                await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
            await gw.flush_ledger()
            live = gw.app.gateway.semantic.live
            for _ in range(200):  # half the hits wrong: tightened to the strictest threshold, then suspended
                live.record("medical", True)
                live.record("medical", False)
            for _ in range(20):
                live.record("faq", False)
            yield gw
    finally:
        await fake.close()


async def test_the_admin_sees_each_task_and_which_is_suspended(semantic_gw: RunningGateway) -> None:
    status, body = await call(semantic_gw, "/dashboard/api/semantic", ADMIN_KEY)
    assert status == 200 and body["enabled"] is True and body["audit_share"] == 0.25 and body["budget"] == 0.01
    rows = {r["task"]: r for r in body["data"]}
    assert set(rows) == {"faq", "medical"}
    assert rows["medical"]["suspended"] is True and rows["medical"]["total_audits"] == 400
    assert rows["faq"]["suspended"] is False and rows["faq"]["false_hits"] == 0 and rows["faq"]["audits"] == 20
    assert rows["faq"]["false_hit_rate_high95"] < 0.2 and rows["faq"]["threshold_offset"] == 0.0


async def test_a_tenant_sees_no_other_tenants_counts(semantic_gw: RunningGateway) -> None:
    status, body = await call(semantic_gw, "/dashboard/api/semantic", TENANT)
    assert status == 200 and body["data"] == []  # the counts are per task, across tenants
    status, _ = await call(semantic_gw, "/dashboard/api/semantic", None)
    assert status == 401


async def test_the_overview_warns_of_the_suspended_task(semantic_gw: RunningGateway, browser: Any) -> None:
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = Page(await context.new_page())
    await page.page.goto(semantic_gw.url + "/dashboard")
    await page.page.fill("#key", ADMIN_KEY)
    await page.page.click("#login-form button")
    await page.loaded("overview")
    assert await page.page.locator("#semantic-panel").is_visible()
    alerts = await page.page.locator("#semantic-alerts .alert").all_inner_texts()
    assert len(alerts) == 1 and "task medical are suspended" in alerts[0]
    assert await page.page.locator("#semantic-table tbody tr").count() == 2
    cells = await page.page.locator("#semantic-table tbody tr").all_inner_texts()
    assert any("medical" in c and "suspended" in c for c in cells) and any("faq" in c and "+0.00" in c for c in cells)
    assert "25.0% of semantic hits" in await page.page.locator("#semantic-note").inner_text()
    await page.page.locator("#semantic-panel").scroll_into_view_if_needed()
    await page.page.screenshot(path=str(SHOTS / "semantic.png"), full_page=True)
    assert page.errors == []
    await context.close()
