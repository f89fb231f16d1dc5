"""The HTML report: one self-contained file (inline CSS and scripts, no links out).

Its charts are drawn in the browser by the dashboard's own chart module (``dashboard/static/chart.js``,
inlined with ``chart.css`` and ``report.js``) from the report's figures, embedded as one JSON block; so the
report and the dashboard draw the same data with the same code. Tables are plain HTML and need no script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from importlib import resources
from typing import Any

import orjson

from tokenomy.ledger.record import LEVERS
from tokenomy.reports.model import Group, Report
from tokenomy.reports.render_table import economy_cells, money, ms, percent, window_text
from tokenomy.reports.timeparse import format_time

_CSS = """
:root { --muted: #57606a; --line: #d0d7de; color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; }
.chart { min-width: 0; margin: 0.6rem 0; } .chart h3 { font-size: 0.95rem; margin: 0 0 0.3rem; }
#cost-chart, #lever-chart { max-width: 820px; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.6rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f6f6f6; } td:first-child, th:first-child { text-align: left; }
td:first-child { white-space: normal; overflow-wrap: anywhere; max-width: 16rem; }
.prompts td:first-child { white-space: nowrap; max-width: none; }
tr.total td { font-weight: bold; border-top: 2px solid #ccc; }
td.prompt { text-align: left; font-family: ui-monospace, monospace; white-space: pre-wrap; max-width: 40rem; }
code { font-family: ui-monospace, monospace; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6rem 1rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
"""


def _asset(name: str) -> str:
    return resources.files("tokenomy.dashboard").joinpath("static", name).read_text("utf-8")


def _script(source: str) -> str:
    if "</script" in source.lower():  # would end the inline block early
        raise ValueError("a chart script holds '</script'")
    return f"<script>{source}</script>"


def chart_data(report: Report) -> dict[str, Any]:
    """The figures the charts draw, in the shapes the dashboard's API gives its charts."""
    total = report.total.sums

    def group(g: Group) -> dict[str, Any]:
        sums = g.sums
        return {"group": g.name, "requests": sums.requests, "cost_per_1k_requests_usd": sums.cost_per_1k_requests_usd,
                "tokens_per_request": sums.tokens_per_request}  # fmt: skip

    return {
        "bucket_s": report.bucket_s,
        "levers": list(LEVERS),
        "requests": total.requests,
        "saved_usd": {lever: total.saved_usd.get(lever, 0.0) for lever in LEVERS},
        "series": [
            {"t": start, "cost_usd": s.cost_usd, "saved_usd": {lever: s.saved_usd.get(lever, 0.0) for lever in LEVERS}}
            for start, s in report.series
        ],
        "by_task": [group(g) for g in report.by_task],
        "by_language": [group(g) for g in report.by_language],
    }


def _data_block(data: dict[str, Any]) -> str:
    """The figures as a JSON block; ``<``, ``>`` and ``&`` escaped so no ledger value can close it."""
    text = orjson.dumps(data).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="report-data">{text}</script>'


def _chart(node_id: str, title: str) -> str:
    return f'<div class="chart"><h3>{escape(title)}</h3><div id="{node_id}"></div></div>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], total: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    if total is not None:
        body += '<tr class="total">' + "".join(f"<td>{escape(c)}</td>" for c in total) + "</tr>"
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _cards(report: Report) -> str:
    sums, lat = report.total.sums, report.total.latency
    cards = [
        ("requests", f"{sums.requests:,}"),
        ("spend", money(sums.cost_usd)),
        ("baseline", money(sums.baseline_cost_usd)),
        ("saved", f"{money(sums.saved_total_usd)} ({percent(sums.saved_total_usd, sums.baseline_cost_usd)})"),
        ("error rate", percent(sums.errors, sums.requests)),
        ("tokens / request", f"{sums.tokens_per_request:,.1f}"),
        ("cost / 1,000 requests", money(sums.cost_per_1k_requests_usd)),
        ("latency p50 / p95 / p99", f"{ms(lat.p50)} / {ms(lat.p95)} / {ms(lat.p99)} ms"),
    ]
    items = "".join(f'<div class="card">{escape(name)}<b>{escape(value)}</b></div>' for name, value in cards)
    return f'<div class="cards">{items}</div>'


def _group_row(group: Group) -> list[str]:
    sums, lat = group.sums, group.latency
    return [
        group.name,
        f"{sums.requests:,}",
        percent(sums.errors, sums.requests),
        f"{sums.tokens_per_request:,.1f}",
        money(sums.cost_usd),
        money(sums.cost_per_1k_requests_usd),
        money(sums.baseline_cost_usd),
        money(sums.saved_total_usd),
        ms(lat.p50),
        ms(lat.p95),
        ms(lat.p99),
    ]


def _lever_row(group: Group) -> list[str]:
    sums = group.sums
    return [
        group.name,
        *(money(sums.saved_usd.get(lever, 0.0)) for lever in LEVERS),
        money(sums.saved_total_usd),
        percent(sums.saved_total_usd, sums.baseline_cost_usd),
    ]


def _groups(report: Report) -> str:
    """Two tables of readable width: the groups, then each group's savings by lever."""
    header = [
        report.query.by,
        "requests",
        "error rate",
        "tokens/req",
        "spend",
        "$/1k req",
        "baseline",
        "saved",
        "p50 ms",
        "p95 ms",
        "p99 ms",
    ]
    levers = [report.query.by, *(f"saved: {lever}" for lever in LEVERS), "saved", "saved %"]
    return _table(header, [_group_row(g) for g in report.groups], _group_row(report.total)) + _table(
        levers, [_lever_row(g) for g in report.groups], _lever_row(report.total)
    )


def _economy(groups: list[Group], dimension: str) -> str:
    rows = []
    for group in groups:
        rows.append([*economy_cells(group), percent(group.sums.errors, group.sums.requests)])
    header = [dimension, "requests", "prompt/req", "completion/req", "tokens/req", "cached input", "$/1k req", "spend",
              "error rate"]  # fmt: skip
    return _table(header, rows)


def _prompts(report: Report) -> str:
    show = report.query.sections.show_prompts
    header = ["prompt hash", "requests", "tokens", "spend", *(["prompt"] if show else [])]
    if not report.top_prompts:
        return "<p>No prompt hashes in this window.</p>"
    rows_html = []
    for row in report.top_prompts:
        cells = [
            f"<td><code>{escape(row.prompt_hash)}</code></td>",
            f"<td>{row.requests:,}</td>",
            f"<td>{row.tokens:,}</td>",
            f"<td>{escape(money(row.cost_usd))}</td>",
        ]
        if show:
            text = row.prompt if row.prompt is not None else "(not stored: ledger.store_prompts is off)"
            cells.append(f'<td class="prompt">{escape(text)}</td>')
        rows_html.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    note = "" if show else "<p class=meta>Prompts are shown by hash; <code>--show-prompts</code> shows stored text.</p>"
    table = f"<table class=prompts><thead><tr>{head}</tr></thead><tbody>{''.join(rows_html)}</tbody></table>"
    return f"{note}<div class=wrap>{table}</div>"


def render(report: Report, on_chart: Callable[[str], None] | None = None) -> str:
    """The whole report as one HTML document (``on_chart``, if given, is told ``"charts"`` once their data is in)."""
    charts = _data_block(chart_data(report))
    if on_chart is not None:
        on_chart("charts")
    meta = (
        f"{escape(report.source)} &middot; {escape(window_text(report))} &middot; "
        f"generated {escape(format_time(report.generated_at))}"
    )
    sections = [
        f"<h1>Tokenomy report</h1><p class=meta>{meta}</p>",
        _cards(report),
        "<h2>Cost over time</h2>",
        '<div class="chart" id="cost-chart"></div>',
        "<h2>Savings by lever</h2>",
        '<div class="chart" id="lever-chart"></div>',
        f"<h2>By {escape(report.query.by)}</h2>",
        _groups(report),
        "<h2>Token economy</h2>",
        '<div class="charts">',
        _chart("task-cost-chart", "Cost per 1,000 requests by task"),
        _chart("task-token-chart", "Tokens per request by task"),
        "</div>",
        _economy(report.by_task, "task"),
        '<div class="charts">',
        _chart("language-cost-chart", "Cost per 1,000 requests by language"),
        _chart("language-token-chart", "Tokens per request by language"),
        "</div>",
        _economy(report.by_language, "language"),
        "<h2>Most expensive prompts</h2>",
        _prompts(report),
        "<noscript><p class=meta>The charts need JavaScript; the tables above hold the same figures.</p></noscript>",
    ]
    body = "\n".join(sections)
    scripts = charts + _script(_asset("chart.js")) + _script(_asset("report.js"))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Tokenomy report</title><style>{_CSS}{_asset('chart.css')}</style></head>\n"
        f"<body>\n{body}\n{scripts}\n</body></html>\n"
    )
