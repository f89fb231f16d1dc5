"""``tokenomy plan`` output: a table, JSON, or an HTML report with the cost-versus-volume plot."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from tokenomy.planning.plan import Decision, Option, cheapest
from tokenomy.planning.traffic import Traffic


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def assumptions(d: Decision) -> list[str]:
    """Every assumption behind the numbers, in words."""
    a, t = d.assumptions, d.traffic
    lines = [
        f"traffic: {t.source}: {t.requests:,.0f} requests/month, {t.input_tokens:,.0f} input tokens "
        f"({t.cached_tokens:,.0f} cached), {t.output_tokens:,.0f} output tokens; "
        f"busiest hour {t.peak_to_mean:.2f}x the mean",
        "a month is 30 days of traffic and 730 billed hours",
        f"API prices from genai-prices; {a.batch_share:.0%} of traffic sent through the batch API at "
        f"{a.batch_discount:.0%} off",
        f"self-hosted replicas run all month: enough for the busiest hour at {1 - a.headroom:.0%} of capacity, "
        f"plus {a.redundancy} spare (N+{a.redundancy}); no scaling to zero",
        "capacity is output tokens/s per GPU for the benchmark's input/output mix; a different mix changes it",
        "GPU prices from the catalog (per GPU-hour, list prices); staff, storage and egress are not included",
        "the self-hosted model is assumed good enough for this traffic: compare its answers with the API's first",
    ]
    if a.slo:
        lines.append("SLO: " + ", ".join(f"{k}={v:g}" for k, v in a.slo.items()) + " (p90 at the measured load)")
    return lines + [f"note: {p}" for p in d.problems]


def _verdict(d: Decision) -> str:
    best = d.best
    text = f"Recommendation: {best.name} at {_usd(best.monthly_usd)}/month"
    if d.break_even_factor is None:
        text += "; self-hosting does not become cheapest between 0.001x and 10,000x this volume"
    else:
        f = d.break_even_factor
        rpd = d.traffic.requests_per_day * f
        where = "below" if f > 1 else "above"
        text += (
            f". Break-even: self-hosting is cheapest from {f:.3g}x this volume ({rpd:,.0f} requests/day); "
            f"the API is cheaper {where} it"
            if f > 1
            else f". Break-even: self-hosting is cheapest from {f:.3g}x this volume ({rpd:,.0f} requests/day)"
        )
    return text


def to_dict(d: Decision) -> dict[str, Any]:
    """Plain data: traffic, options with their inputs, the recommendation and the assumptions."""
    return {
        "traffic": asdict(d.traffic),
        "options": [asdict(o) for o in d.options],
        "recommendation": d.best.name,
        "break_even_factor": d.break_even_factor,
        "break_even_requests_per_day": (
            d.traffic.requests_per_day * d.break_even_factor if d.break_even_factor is not None else None
        ),
        "assumptions": assumptions(d),
        "verdict": _verdict(d),
    }


def to_json(d: Decision) -> str:
    """The decision as JSON."""
    return json.dumps(to_dict(d), indent=2) + "\n"


def _grid(d: Decision) -> Table:
    grid = Table(title="Options for a month of this traffic", title_justify="left")
    for name in ("option", "monthly", "per 1M tokens", "GPUs", "utilization", "latency at peak", "note"):
        grid.add_column(
            name, justify="right" if name in ("monthly", "per 1M tokens", "GPUs", "utilization") else "left"
        )
    for o in d.options:
        grid.add_row(
            o.name + ("" if o.feasible else " (misses SLO)"),
            _usd(o.monthly_usd),
            _usd(o.usd_per_mtok),
            "-" if o.replicas is None else str(o.replicas),
            "-" if o.utilization is None else f"{o.utilization:.0%}",
            o.latency_at_peak,
            o.note,
        )
    return grid


def to_table(d: Decision, width: int = 160) -> str:
    """The decision as a text table with the verdict and assumptions."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(_grid(d))
    console.print(_verdict(d), highlight=False)
    console.print("Assumptions:", highlight=False)
    for line in assumptions(d):
        console.print(f"  - {line}", highlight=False)
    return buffer.getvalue()


def cost_curve(d: Decision, options_at: Callable[[Traffic], list[Option]]) -> bytes:
    """PNG: monthly cost of the cheapest API and cheapest self-hosted option against volume, break-even marked."""
    from matplotlib.figure import Figure

    hi = max(10.0, (d.break_even_factor or 1.0) * 4)
    factors = [0.01 * (hi / 0.01) ** (i / 120) for i in range(121)]
    api, own = [], []
    for f in factors:
        opts = options_at(d.traffic.scaled(f))
        a = cheapest([o for o in opts if o.kind == "api"])
        s = cheapest([o for o in opts if o.kind == "self-hosted"])
        api.append(a.monthly_usd if a else float("nan"))
        own.append(s.monthly_usd if s else float("nan"))
    x = [d.traffic.requests_per_day * f for f in factors]
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    ax.plot(x, api, label="cheapest API", color="#1f77b4")
    ax.step(x, own, where="post", label="cheapest self-hosted", color="#d62728")
    ax.axvline(d.traffic.requests_per_day, color="#7f7f7f", linestyle=":", label="this traffic")
    if d.break_even_factor is not None:
        be = d.traffic.requests_per_day * d.break_even_factor
        ax.axvline(be, color="#2ca02c", linestyle="--", label=f"break-even {be:,.0f} req/day")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests per day (same token mix)")
    ax.set_ylabel("USD per month")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def to_html(d: Decision, options_at: Callable[[Traffic], list[Option]]) -> str:
    """A self-contained HTML report: verdict, options with their inputs, the plot and the assumptions."""
    png = base64.b64encode(cost_curve(d, options_at)).decode()
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c))}</td>"
            for c in (
                o.name,
                _usd(o.monthly_usd),
                _usd(o.usd_per_mtok),
                o.replicas or "-",
                "-" if o.utilization is None else f"{o.utilization:.0%}",
                o.latency_at_peak,
                o.note,
                "; ".join(f"{k}={v}" for k, v in o.inputs.items()),
            )
        )
        + "</tr>"
        for o in d.options
    )
    items = "".join(f"<li>{html.escape(line)}</li>" for line in assumptions(d))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tokenomy plan</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px;font-size:13px;vertical-align:top}}</style></head><body>
<h1>API or self-hosting</h1><p><b>{html.escape(_verdict(d))}</b></p>
<table><tr><th>option</th><th>monthly</th><th>per 1M tokens</th><th>GPUs</th><th>utilization</th>
<th>latency at peak</th><th>note</th><th>inputs</th></tr>{rows}</table>
<h2>Cost against volume</h2><img alt="cost against volume" src="data:image/png;base64,{png}">
<h2>Assumptions</h2><ul>{items}</ul></body></html>
"""
