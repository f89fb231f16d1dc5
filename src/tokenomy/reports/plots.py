"""The HTML report's charts as PNG bytes (matplotlib's object API: no pyplot, no global state)."""

from __future__ import annotations

import io

import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tokenomy.ledger.record import LEVERS
from tokenomy.reports.model import Group, Report
from tokenomy.reports.render_table import short_money

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
    """Spend plus each lever's saving per time bucket, stacked (the stack's top is the baseline)."""
    return _png(cost_figure(report))


def cost_figure(report: Report) -> Figure:
    """The cost-over-time figure: one stacked bar per bucket; the x axis spans exactly the data's buckets."""
    unit = "hour" if report.bucket_s == 3600 else "day"
    title = f"Cost per {unit} (UTC), stacked: spend and the saving of each lever"
    fig = Figure(figsize=(9, 3.8))
    if not report.series:
        _empty(fig, title)
        return fig
    width = report.bucket_s / 86400  # matplotlib dates are in days
    starts = [start / 86400 for start, _ in report.series]  # matplotlib's dates: days since 1970-01-01
    ax = fig.add_subplot()
    bottom = np.zeros(len(starts))
    layers = [("spend", COST, [s.cost_usd for _, s in report.series])]
    layers += [(f"saved: {lever}", color, [s.saved_usd.get(lever, 0.0) for _, s in report.series])
               for lever, color in zip(LEVERS, LEVER_COLORS, strict=False)]
    for name, color, values in layers:
        ax.bar(starts, values, width=width * 0.9, bottom=bottom, align="edge", color=color, label=name)
        bottom += np.asarray(values)
    ax.set_xlim(starts[0], starts[-1] + width)  # the data's own span, never matplotlib's default years
    locator = mdates.AutoDateLocator(minticks=2, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.yaxis.set_major_formatter(lambda v, _pos: short_money(v))
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=len(layers), frameon=False)
    return fig


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
    ax.bar_label(bars, labels=[short_money(v) for v in values], padding=2)
    ax.yaxis.set_major_formatter(lambda v, _pos: short_money(v))
    ax.set_title(title)
    ax.set_ylim(bottom=0)
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
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncols=2, frameon=False)  # below the axis label
    left.grid(axis="x", alpha=0.3)
    right.barh(names, per_1k, color=COST)
    right.set_xlabel("USD per 1,000 requests")
    right.xaxis.set_major_formatter(lambda v, _pos: short_money(v))
    right.xaxis.set_major_locator(MaxNLocator(4))
    right.grid(axis="x", alpha=0.3)
    fig.suptitle(title + (f" (top {limit} by spend)" if len(groups) > limit else ""))
    return _png(fig)
