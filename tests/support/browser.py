"""Debian's Chromium for the browser tests, driven by Playwright (no browser download)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Screenshots go under here (git-ignored), one folder per page kind."""
