"""Showing an evaluation: the terminal tables, the JSON document, the Pareto plot and the HTML report."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from tokenomy.evaluate.summary import ModelTaskResult


def document(
    rows: Sequence[ModelTaskResult],
    pareto: dict[str, list[str]],
    policy: dict[str, str] | None,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """The ``--format json`` document."""
    out: dict[str, Any] = {"results": [r.as_dict() for r in rows], "pareto": pareto}
    if policy is not None:
        out["policy"] = policy
    out.update(meta)
    return out


def _q(row: ModelTaskResult) -> str:
    if row.quality is None:
        return "-"
    text = f"{row.quality:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"
    return text + (f" ±{row.repeat_std:.3f}" if row.repeat_std is not None else "")


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_tables(
    console: Console,
    rows: Sequence[ModelTaskResult],
    pareto: dict[str, list[str]],
    policy: dict[str, str] | None,
    notes: Sequence[str],
) -> None:
    """Per task: each model's quality (95% CI), errors, cost and latency, then the front and the choice."""
    for task in dict.fromkeys(r.task for r in rows):
        front = pareto.get(task, [])
        table = Table(title=f"task {task}", title_justify="left")
        for name in (
            "model",
            "items",
            "errors",
            "quality [95% CI]",
            "cost",
            "per 1k req",
            "tokens in/out",
            "p50 ms",
            "p95 ms",
            "ttft p50",
            "Pareto",
        ):
            table.add_column(name, justify="left" if name in ("model", "quality [95% CI]") else "right")
        members = sorted((r for r in rows if r.task == task), key=lambda r: r.cost_per_1k_requests_usd or 0.0)
        for row in members:
            chosen = policy is not None and policy.get(task) == row.model
            table.add_row(
                row.model + (" *" if chosen else ""),
                str(row.n),
                str(row.errors + row.scorer_errors) if (row.errors or row.scorer_errors) else "0",
                _q(row),
                _money(row.cost_usd),
                _money(row.cost_per_1k_requests_usd),
                f"{row.prompt_tokens:,}/{row.completion_tokens:,}",
                _ms(row.p50_latency_ms),
                _ms(row.p95_latency_ms),
                _ms(row.p50_ttft_ms),
                "yes" if row.model in front else "",
            )
        console.print(table)
    if policy is not None:
        console.print("* the policy's choice: the cheapest model whose lower bound meets the bar")
    for note in notes:
        console.print(note)


def pareto_png(rows: Sequence[ModelTaskResult], pareto: dict[str, list[str]]) -> bytes:
    """Cost per 1,000 requests (log x) against quality, with 95% intervals, one panel per task."""
    tasks = list(dict.fromkeys(r.task for r in rows))
    fig = Figure(figsize=(6.0 * max(1, len(tasks)), 4.5))
    for i, task in enumerate(tasks, start=1):
        ax = fig.add_subplot(1, len(tasks), i)
        members = [r for r in rows if r.task == task and r.quality is not None and r.cost_per_1k_requests_usd]
        for row in members:
            assert row.quality is not None and row.ci_low is not None and row.ci_high is not None
            ax.errorbar(
                [row.cost_per_1k_requests_usd or 0.0],
                [row.quality],
                yerr=[[row.quality - row.ci_low], [row.ci_high - row.quality]],
                fmt="o",
                capsize=3,
                color="#1f77b4" if row.model in pareto.get(task, []) else "#7f7f7f",
            )
            ax.annotate(
                row.model,
                (row.cost_per_1k_requests_usd or 0.0, row.quality),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        front = [r for m in pareto.get(task, []) for r in members if r.model == m]
        if len(front) > 1:
            xs = [r.cost_per_1k_requests_usd or 0.0 for r in front]
            ax.plot(xs, [r.quality or 0.0 for r in front], "--", color="#1f77b4")
        if members:
            ax.set_xscale("log")
        ax.set_title(f"task {task}")
        ax.set_xlabel("USD per 1,000 requests (log)")
        ax.set_ylabel("quality (95% CI)")
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def html_report(doc: dict[str, Any], png: bytes, title: str) -> str:
    """A self-contained HTML page: the plot and the results table."""
    cols = [
        "task",
        "model",
        "n",
        "errors",
        "quality",
        "ci_low",
        "ci_high",
        "cost_usd",
        "cost_per_1k_requests_usd",
        "prompt_tokens",
        "completion_tokens",
        "p50_latency_ms",
        "p95_latency_ms",
        "p50_ttft_ms",
    ]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in doc["results"]
    )
    extra = "".join(
        f"<h2>{html.escape(k)}</h2><pre>{html.escape(str(v))}</pre>" for k, v in doc.items() if k != "results"
    )
    image = base64.b64encode(png).decode()
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><img alt='cost against quality' src='data:image/png;base64,{image}'>"
        f"<h2>results</h2><table><tr>{head}</tr>{body}</table>{extra}</body></html>"
    )
