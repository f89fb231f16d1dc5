"""Take the README's dashboard screenshot: a week of synthetic traffic, the gateway, headless Chromium.

    PYTHONPATH=src .venv/bin/python scripts/dashboard_screenshot.py [--out docs/images/dashboard.png]

Writes 100,000 synthetic ledger records over the last 24 hours (the report benchmark's generator: 8 tasks,
5 models, 7 languages), serves them with ``tokenomy serve`` on a free loopback port (no keys: the page
is open), opens ``/dashboard`` (its default window: the last 24 hours) in Debian's Chromium (dark mode,
1366 px wide) and saves the top of the page.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench" / "ledger"), str(ROOT)]
from report import synthetic  # noqa: E402
from tests.support.browser import ARGS, CHROMIUM  # noqa: E402
from tests.support.serve_process import start_serve  # noqa: E402

from tokenomy.ledger.stores.sqlite import SqliteStore  # noqa: E402

CONFIG = """ledger: {{store: sqlite, path: "{ledger}"}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o-mini}}]
  - name: gpt-4o
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o}}]
"""


async def shoot(out: Path, work: Path) -> None:
    """Fill the ledger, serve it, save the screenshot."""
    from playwright.async_api import async_playwright

    ledger = work / "ledger.db"
    store = SqliteStore(ledger)
    store.open()
    records = sorted(synthetic(100_000, days=1), key=lambda r: r.ts)
    for start in range(0, len(records), 10_000):  # in time order, as a gateway writes them
        store.write(records[start : start + 10_000])
    store.close()
    config = work / "tokenomy.yaml"
    config.write_text(CONFIG.format(ledger=ledger))
    proc, url = await start_serve(config, work, output=asyncio.subprocess.DEVNULL)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            context = await browser.new_context(viewport={"width": 1366, "height": 1300}, color_scheme="dark")
            page = await context.new_page()
            await page.goto(url + "/dashboard")  # the last 24 hours
            await page.wait_for_selector("body[data-loaded=overview]", timeout=60_000)
            await page.wait_for_selector("#advice .rec", timeout=60_000)
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out))
            await browser.close()
    finally:
        proc.terminate()
        await proc.wait()


def main() -> None:
    """Parse the options and take the screenshot."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tokenomy-shot-") as work:
        asyncio.run(shoot(opts.out, Path(work)))
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
