"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no browser download).

Pages load with no console errors, the overview shows the same totals as ``tokenomy report``, filters
change the numbers, a key is created and revoked, a tenant key sees only its tenant, and hostile task and
model names render as text. Screenshots of each page go to ``test-artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.dashboard.rig import HOSTILE_MODEL, HOSTILE_TASK, Rig
from tests.support.browser import ARGS, CHROMIUM
from tests.support.browser import SHOTS as ARTIFACTS

from tokenomy.cli import main

SHOTS = ARTIFACTS / "dashboard"

playwright_api = pytest.importorskip("playwright.async_api")
if not Path(CHROMIUM).exists():  # scripts/install-test-servers.sh installs it
    pytest.skip(f"{CHROMIUM} is not installed (run scripts/install-test-servers.sh)", allow_module_level=True)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        await b.close()


class Page:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def open(self, rig: Rig, key: str) -> None:
        await self.page.goto(rig.gw.url + "/dashboard")
        await self.page.fill("#key", key)
        await self.page.click("#login-form button")
        await self.loaded("overview")

    async def loaded(self, tab: str) -> None:
        await self.page.wait_for_selector(f"body[data-loaded={tab}]", timeout=15000)

    async def window(self) -> None:
        """Widen the window to every record and reload."""
        await self.page.fill("#since", "2000-01-01")
        await self.page.fill("#until", "2100-01-01")
        await self.page.evaluate("delete document.body.dataset.loaded")
        await self.page.click("#window-form button")

    async def card(self, label: str) -> str:
        value: str = await self.page.locator(".card", has_text=label).first.locator(".value").inner_text()
        return value


async def _new(browser: Any) -> Page:
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme="dark")
    return Page(await context.new_page())


async def test_admin_overview_matches_the_report_and_escapes_names(rig: Rig, browser: Any) -> None:
    result = CliRunner().invoke(
        main,
        ["report", "--config", str(rig.config), "--since", "2000-01-01", "--until", "2100-01-01", "--format", "json"],
    )
    groups = json.loads(result.output)
    page = await _new(browser)
    await page.open(rig, rig.admin)
    await page.window()
    await page.loaded("overview")
    assert await page.card("requests") == f"{sum(g['requests'] for g in groups):,}"
    assert await page.card("tokens in") == f"{sum(g['prompt_tokens'] for g in groups):,}"
    cells = await page.page.locator("#task-table td:first-child").all_inner_texts()
    assert HOSTILE_TASK in cells and "summarize" in cells
    assert await page.page.evaluate("window.__xss") is None
    await page.page.locator("#advice").scroll_into_view_if_needed()
    await page.page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    assert page.errors == []


async def test_requests_filters_and_keys(rig: Rig, browser: Any) -> None:
    page = await _new(browser)
    await page.open(rig, rig.admin)
    await page.window()
    await page.loaded("overview")
    await page.page.click("button[data-tab=requests]")
    await page.loaded("requests")
    assert (
        await page.page.inner_text("#match-count") == f"{len(rig.ids['red']) + len(rig.ids['blue'])} matching requests"
    )
    await page.page.select_option("#f-task", "summarize")
    await page.page.evaluate("delete document.body.dataset.loaded")
    await page.page.click("#filter-form button")
    await page.loaded("requests")
    assert await page.page.inner_text("#match-count") == "6 matching requests"
    await page.page.select_option("#f-task", "")
    await page.page.select_option("#f-status", "error")
    await page.page.evaluate("delete document.body.dataset.loaded")
    await page.page.click("#filter-form button")
    await page.loaded("requests")
    assert await page.page.inner_text("#match-count") == "1 matching requests"
    assert HOSTILE_MODEL in await page.page.locator("#request-table tbody td").all_inner_texts()
    await page.page.click("#request-table tbody tr")
    await page.page.wait_for_selector("#record:not([hidden])")
    await page.page.screenshot(path=str(SHOTS / "requests.png"), full_page=True)

    await page.page.click("button[data-tab=keys]")
    await page.loaded("keys")
    await page.page.fill("#k-name", "ci-bot")
    await page.page.fill("#k-budget", "25")
    await page.page.click("#key-form button")
    await page.page.wait_for_selector("#key-secret:not([hidden])")
    assert "tk-" in await page.page.inner_text("#key-secret")
    row = page.page.locator("#key-table tbody tr", has_text="ci-bot")
    page.page.once("dialog", lambda dialog: dialog.accept())
    await row.click()
    await playwright_api.expect(row.locator("td").nth(4)).to_have_text("yes")  # the revoked column
    await page.page.screenshot(path=str(SHOTS / "keys.png"), full_page=True)
    assert page.errors == []


async def test_a_tenant_sees_only_its_rows(rig: Rig, browser: Any) -> None:
    page = await _new(browser)
    await page.open(rig, rig.keys["red"])
    await page.window()
    await page.loaded("overview")
    assert await page.card("requests") == str(len(rig.ids["red"]))
    assert await page.page.locator("#keys-tab").is_hidden()
    cells = await page.page.locator("#task-table td:first-child").all_inner_texts()
    assert cells == ["summarize"]
    await page.page.screenshot(path=str(SHOTS / "tenant.png"), full_page=True)
    assert page.errors == []


async def test_html_report_tables_fit_a_laptop_screen(rig: Rig, browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "--config", str(rig.config), "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = await _new(browser)
    await page.page.set_viewport_size({"width": 1280, "height": 800})
    await page.page.goto(out.as_uri())
    widths = await page.page.eval_on_selector_all(".wrap", "ws => ws.map(w => [w.scrollWidth, w.clientWidth])")
    assert widths and all(scroll <= client for scroll, client in widths[:2]), widths  # groups and levers
    await page.page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
    assert page.errors == []
