"""The terminal report: rich tables for the summary, the groups, savings by lever, token economy, prompts."""

from __future__ import annotations

from rich.console import Group as RichGroup
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from tokenomy.ledger.record import LEVERS
from tokenomy.pricing.money import usd
from tokenomy.reports.model import Group, Report
from tokenomy.reports.timeparse import format_time

PROMPT_WIDTH = 80
"""Characters of prompt text shown in the terminal table."""


def economy_cells(group: Group) -> list[str]:
    """A group's name, requests, tokens per request, cached-input share, $/1k requests and spend
    (the economy table's common cells, in the terminal and the HTML report)."""
    sums = group.sums
    n = sums.requests or 1
    return [
        group.name,
        f"{sums.requests:,}",
        f"{sums.prompt_tokens / n:,.1f}",
        f"{sums.completion_tokens / n:,.1f}",
        f"{sums.tokens_per_request:,.1f}",
        f"{sums.cached_input_share:.1%}",
        money(sums.cost_per_1k_requests_usd),
        money(sums.cost_usd),
    ]


def money(value: float) -> str:
    """``$1,234.56``, ``$0.0042``, ``$0.0000123``: small amounts keep their significant digits."""
    return usd(value)


def short_money(value: float) -> str:
    """Money for chart labels: ``$1,234.56``, ``$0.12``, and two significant digits under a cent
    (``$0.0033``, never ``$0.00``)."""
    if value == 0:
        return "$0"
    if abs(value) >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.2g}" if abs(value) >= 1e-4 else f"${value:.1e}"


def ms(value: float | None) -> str:
    """Milliseconds, or a dash."""
    return "-" if value is None else f"{value:,.0f}"


def percent(part: float, whole: float) -> str:
    """``12.3%``, or a dash when ``whole`` is zero."""
    return f"{part / whole * 100:.1f}%" if whole else "-"


def window_text(report: Report) -> str:
    """The time range in words."""
    window = report.query.window
    since = format_time(window.since) if window.since is not None else "the first record"
    until = format_time(window.until) if window.until is not None else "now"
    return f"{since} to {until}"


def summary(report: Report) -> Table:
    """Totals over the window."""
    total = report.total
    sums = total.sums
    table = Table(title="Summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("requests", f"{sums.requests:,}")
    table.add_row("errors (status >= 400)", f"{sums.errors:,} ({percent(sums.errors, sums.requests)})")
    table.add_row("spend", money(sums.cost_usd))
    table.add_row("baseline (no levers)", money(sums.baseline_cost_usd))
    table.add_row("saved", f"{money(sums.saved_total_usd)} ({percent(sums.saved_total_usd, sums.baseline_cost_usd)})")
    for lever in LEVERS:
        table.add_row(f"  by {lever}", money(sums.saved_usd.get(lever, 0.0)))
    table.add_row("tokens per request", f"{sums.tokens_per_request:,.1f}")
    table.add_row("cost per 1,000 requests", money(sums.cost_per_1k_requests_usd))
    lat = total.latency
    table.add_row("latency p50 / p95 / p99 (ms)", f"{ms(lat.p50)} / {ms(lat.p95)} / {ms(lat.p99)}")
    for row in report.prices:
        table.add_row(
            f"priced: {PRICE_LABELS.get(row.kind, row.kind)}", f"{row.requests:,} requests, {money(row.cost_usd)}"
        )
    comparison = report.comparison
    if comparison is not None and comparison.prompt_tokens + comparison.completion_tokens:
        cost = "unknown price" if comparison.cost_usd is None else money(comparison.cost_usd)
        table.add_row(
            f"compare with {comparison.model} (not a saving)",
            f"{cost} for the same {comparison.prompt_tokens:,} + {comparison.completion_tokens:,} tokens at list price",
        )
    return table


PRICE_LABELS = {
    "configured": "configured prices",
    "database": "price database (genai-prices)",
    "default": "default machine cost (embedded models)",
    "unknown": "unknown price, counted as $0",
}


def groups_table(report: Report) -> Table:
    """Spend, baseline, savings, errors and latency per ``--by`` group."""
    table = Table(title=f"By {report.query.by}", title_justify="left")
    table.add_column(report.query.by, overflow="fold")
    for name in ("requests", "errors", "tokens/req", "spend", "$/1k req", "baseline", "saved", "p50 ms", "p95 ms"):
        table.add_column(name, justify="right")
    for group in [*report.groups, report.total]:
        sums = group.sums
        table.add_row(
            group.name,
            f"{sums.requests:,}",
            f"{sums.errors:,} ({percent(sums.errors, sums.requests)})",
            f"{sums.tokens_per_request:,.1f}",
            money(sums.cost_usd),
            money(sums.cost_per_1k_requests_usd),
            money(sums.baseline_cost_usd),
            f"{money(sums.saved_total_usd)} ({percent(sums.saved_total_usd, sums.baseline_cost_usd)})",
            ms(group.latency.p50),
            ms(group.latency.p95),
            style="bold" if group is report.total else None,
        )
    return table


def levers_table(report: Report) -> Table:
    """Savings by lever per ``--by`` group, with the total row."""
    table = Table(title=f"Savings by lever, by {report.query.by}", title_justify="left")
    table.add_column(report.query.by, overflow="fold")
    for lever in LEVERS:
        table.add_column(lever, justify="right")
    table.add_column("total", justify="right")
    for group in [*report.groups, report.total]:
        saved = group.sums.saved_usd
        style = "bold" if group is report.total else None
        cells = [money(saved.get(lever, 0.0)) for lever in LEVERS]
        table.add_row(group.name, *cells, money(group.sums.saved_total_usd), style=style)
    return table


def economy_table(title: str, column: str, groups: list[Group]) -> Table:
    """Token economy: tokens per request and cost per 1,000 requests per group."""
    table = Table(title=title, title_justify="left")
    table.add_column(column, overflow="fold")
    for name in ("requests", "prompt/req", "completion/req", "tokens/req", "cached input", "$/1k req", "spend"):
        table.add_column(name, justify="right")
    table.add_column("cut at limit", justify="right")  # finish_reason length: an output cap too tight?
    table.add_column("student share", justify="right")  # of cascade requests, answered by the first step
    for group in groups:
        sums = group.sums
        table.add_row(
            *economy_cells(group),
            length_stops(sums.length_stops, sums.finished),
            "-" if sums.student_share is None else f"{sums.student_share:.1%} of {sums.cascade_requests:,}",
        )
    return table


def length_stops(stops: int, finished: int) -> str:
    """``2.5% (4/160)``: answers cut short at the output limit, of those with a recorded finish reason."""
    return f"{percent(stops, finished)} ({stops:,}/{finished:,})" if finished else "-"


def prompts_table(report: Report) -> Table:
    """The most expensive prompts, by hash (text only when asked for and stored)."""
    show = report.query.sections.show_prompts
    table = Table(title="Most expensive prompts", title_justify="left")
    table.add_column("prompt hash", no_wrap=True)
    for name in ("requests", "tokens", "spend"):
        table.add_column(name, justify="right")
    if show:
        table.add_column("prompt", overflow="ellipsis", no_wrap=True, max_width=PROMPT_WIDTH)
    for row in report.top_prompts:
        cells: list[RenderableType] = [row.prompt_hash, f"{row.requests:,}", f"{row.tokens:,}", money(row.cost_usd)]
        if show:
            cells.append(Text(row.prompt if row.prompt is not None else "(not stored)"))
        table.add_row(*cells)
    return table


def render(report: Report) -> RenderableType:
    """Every section of the terminal report."""
    header = Text.assemble(
        ("Tokenomy report", "bold"), f"  {report.source}\n", f"{window_text(report)}, by {report.query.by}"
    )
    parts: list[RenderableType] = [header, summary(report), groups_table(report), levers_table(report)]
    if report.by_task or report.by_language:
        parts.append(economy_table("Token economy by task", "task", report.by_task))
        parts.append(economy_table("Token economy by language", "language", report.by_language))
    if report.query.sections.top_prompts > 0:
        parts.append(prompts_table(report))
    if report.semantic:
        from tokenomy.reports.semantic import table as semantic_table

        parts.append(semantic_table(report.semantic, report.semantic_budget))
    return RichGroup(*parts)
