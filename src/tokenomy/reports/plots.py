"""The HTML report's charts as PNG bytes (matplotlib's object API: no pyplot, no global state)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from tokenomy.ledger.record import LEVERS
from tokenomy.reports.model import Group, Report

DPI = 100
COST = "#d62728"
BASELINE = "#7f7f7f"
LEVER_COLORS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _empty(fig: Figure, title: str) -> bytes:
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, "no records in this window", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return _png(fig)


def cost_over_time(report: Report) -> bytes:
    """Spend and the no-lever baseline per time bucket (hourly or daily)."""
    unit = "hour" if report.bucket_s == 3600 else "day"
    title = f"Cost per {unit} (UTC) and baseline without levers"
    fig = Figure(figsize=(9, 3.6))
    if not report.series:
        return _empty(fig, title)
    when = np.array([int(start) for start, _ in report.series], dtype="datetime64[s]")
    cost = [sums.cost_usd for _, sums in report.series]
    baseline = [sums.baseline_cost_usd for _, sums in report.series]
    ax = fig.add_subplot()
    ax.plot(when, baseline, color=BASELINE, linestyle="--", marker=".", label="baseline")
    ax.plot(when, cost, color=COST, marker=".", label="spend")
    ax.fill_between(when, cost, baseline, color="#2ca02c", alpha=0.15, label="saved")
    ax.set_title(title)
    ax.set_ylabel("USD")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.autofmt_xdate()
    return _png(fig)


def savings_by_lever(report: Report) -> bytes:
    """Total savings per lever over the window."""
    title = "Savings by lever (USD)"
    fig = Figure(figsize=(6, 3.4))
    saved = report.total.sums.saved_usd
    if not report.total.sums.requests:
        return _empty(fig, title)
    values = [saved.get(lever, 0.0) for lever in LEVERS]
    ax = fig.add_subplot()
    bars = ax.bar(list(LEVERS), values, color=LEVER_COLORS[: len(LEVERS)])
    ax.bar_label(bars, labels=[f"${v:,.2f}" for v in values], padding=2)
    ax.set_title(title)
    ax.set_ylabel("USD")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def token_economy(groups: list[Group], dimension: str, limit: int = 15) -> bytes:
    """Tokens per request and cost per 1,000 requests per task (or language), side by side."""
    title = f"Token economy by {dimension}"
    shown = groups[:limit]
    fig = Figure(figsize=(10, 0.45 * max(len(shown), 3) + 1.2))
    if not shown:
        return _empty(fig, title)
    names = [g.name for g in shown][::-1]
    prompt = [g.sums.prompt_tokens / (g.sums.requests or 1) for g in shown][::-1]
    completion = [g.sums.completion_tokens / (g.sums.requests or 1) for g in shown][::-1]
    per_1k = [g.sums.cost_per_1k_requests_usd for g in shown][::-1]
    left, right = fig.subplots(1, 2, sharey=True)
    left.barh(names, prompt, color="#1f77b4", label="prompt")
    left.barh(names, completion, left=prompt, color="#ff7f0e", label="completion")
    left.set_xlabel("tokens per request")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, frameon=False)
    left.grid(axis="x", alpha=0.3)
    right.barh(names, per_1k, color=COST)
    right.set_xlabel("USD per 1,000 requests")
    right.grid(axis="x", alpha=0.3)
    fig.suptitle(title + (f" (top {limit} by spend)" if len(groups) > limit else ""))
    return _png(fig)
