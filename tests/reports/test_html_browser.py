"""The HTML report in a real browser (Debian's Chromium via Playwright): its charts are drawn by the
dashboard's chart module, fit the data's own span, print money under a cent with its digits, keep every
column of the wide tables on a laptop screen, overlap no labels, and show hostile names as text.
A screenshot goes to ``test-artifacts/report/``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.reports.helpers import BASE, write_ledger
from tests.support.browser import ARGS, CHROMIUM, SHOTS

from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.reports.model import ReportQuery, Sections
from tokenomy.reports.query import run_query
from tokenomy.reports.render_html import render

playwright_api = pytest.importorskip("playwright.async_api")
if not Path(CHROMIUM).exists():  # scripts/install-test-servers.sh installs it
    pytest.skip(f"{CHROMIUM} is not installed (run scripts/install-test-servers.sh)", allow_module_level=True)

HOSTILE = '</script><img src=x onerror="window.__xss=1">'
START = BASE + 600  # 00:10 UTC: fifteen minutes of data inside one hour


def _records() -> list[LedgerRecord]:
    """Fifteen minutes of cheap traffic (every amount under a cent) over four tasks, one with a hostile name."""
    out = []
    for i in range(40):
        out.append(
            LedgerRecord(
                request_id=f"r{i}",
                ts=START + i * 22.5,
                task=("chat", "summarize", "extract", HOSTILE)[i % 4],
                requested_model="fast",
                served_model="gpt-4o-mini",
                prompt_tokens=200 + i,
                completion_tokens=40,
                language=("en", "fr")[i % 2],
                latency_ms=300.0 + i,
                cost_usd=0.00011,
                baseline_cost_usd=0.0002,
                saved_cache_usd=0.0000825,  # $0.0033 over the 40 records
                saved_routing_usd=0.0000075,  # $0.0003
            )
        )
    return out


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        await b.close()


async def _open(browser: Any, tmp_path: Path) -> tuple[Any, list[str]]:
    ledger = tmp_path / "ledger.db"
    write_ledger(ledger, _records())
    report = run_query(SqliteStore(ledger), ReportQuery(sections=Sections(economy=True, series=True)))
    page_file = tmp_path / "report.html"
    page_file.write_text(render(report), encoding="utf-8")
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(page_file.as_uri())
    await page.wait_for_selector("body[data-drawn=yes]", timeout=15000)
    return page, errors


async def _texts(page: Any, selector: str) -> list[str]:
    found: list[str] = await page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")
    return found


async def test_the_report_draws_its_charts_with_the_dashboard_module(browser: Any, tmp_path: Path) -> None:
    page, errors = await _open(browser, tmp_path)
    SHOTS.joinpath("report").mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "report" / "report.png"), full_page=True)
    assert errors == []
    assert await page.evaluate("typeof window.TokenomyChart.costOverTime") == "function"
    for chart in ("cost-chart", "lever-chart", "task-cost-chart", "task-token-chart", "language-cost-chart"):
        assert await page.locator(f"#{chart} svg").count() == 1, chart

    # the time axis spans the data's one hour (00:00-01:00 UTC), ticks inside it, never years
    ticks = await _texts(page, "#cost-chart svg text[text-anchor=middle]")
    assert len(ticks) >= 2
    day = datetime.fromtimestamp(BASE, UTC)
    for tick in ticks:
        assert re.fullmatch(r"\d\d:\d\d", tick), tick
        hour, minute = map(int, tick.split(":"))
        assert (hour, minute) <= (1, 0) and day.hour == 0, tick

    # money under a cent keeps two significant digits
    labels = await _texts(page, "#lever-chart svg text")
    assert "$0.0033" in labels and "$0.0003" in labels
    assert "$0.00" not in labels


async def test_wide_tables_fit_a_laptop_screen_and_no_labels_overlap(browser: Any, tmp_path: Path) -> None:
    page, errors = await _open(browser, tmp_path)
    assert errors == []
    # every column header of every table is on screen at 1366 px (none hidden past the right edge)
    right = await page.eval_on_selector_all(
        "table th", "cells => Math.max(...cells.map(c => c.getBoundingClientRect().right))"
    )
    assert 0 < right <= 1366
    assert "p95 ms" in await _texts(page, "table th") and "p99 ms" in await _texts(page, "table th")
    overlaps = await page.evaluate(
        """() => {
        const found = [];
        for (const chart of document.querySelectorAll(".chart")) {
            const boxes = [...chart.querySelectorAll("svg text, .legend span")]
                .map((n) => [n.textContent, n.getBoundingClientRect()]);
            for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
                const [a, p] = boxes[i], [b, q] = boxes[j];
                const w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
                const h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
                if (w > 0.5 && h > 0.5) found.push(chart.id + ": " + a + " / " + b);
            }
        }
        return found;
    }"""
    )
    assert overlaps == []


async def test_hostile_names_are_text(browser: Any, tmp_path: Path) -> None:
    page, errors = await _open(browser, tmp_path)
    assert errors == []
    assert await page.evaluate("window.__xss") is None
    names = await _texts(page, "#task-cost-chart svg text title")
    assert HOSTILE in names
    assert await page.locator("#task-cost-chart img").count() == 0
