"""``tokenomy bench`` output: a table of every load level, and a plot of latency and goodput against load."""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from tokenomy.planning.metrics import Stat, Summary


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pcts(stat: Stat) -> str:
    return f"{_f(stat.p50)} / {_f(stat.p90)} / {_f(stat.p99)}"


def table(summaries: list[Summary], title: str, width: int = 200) -> str:
    """The run as a text table (milliseconds as p50 / p90 / p99), with client-saturation warnings."""
    grid = Table(title=title, title_justify="left")
    for name in (
        "load",
        "ok/sent",
        "req/s",
        "out tok/s",
        "goodput",
        "TTFT ms",
        "TPOT ms",
        "ITL ms",
        "E2E ms",
        "errors",
        "client",
    ):
        grid.add_column(name, justify="left" if name in ("load", "errors") else "right")
    for s in summaries:
        errors = ", ".join(f"{k}: {v}" for k, v in s.errors.items()) or "-"
        client = f"{s.client_cpu_share:.0%} cpu" + (" SATURATED" if s.client_saturated else "")
        grid.add_row(
            s.load,
            f"{s.succeeded}/{s.requests}",
            _f(s.request_throughput, 2),
            _f(s.output_token_throughput),
            _f(s.goodput, 2),
            _pcts(s.ttft),
            _pcts(s.tpot),
            _pcts(s.itl),
            _pcts(s.e2e),
            errors,
            client,
        )
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(grid)
    for s in summaries:
        if s.client_saturated:
            console.print(
                f"warning: at {s.load} the load generator itself was saturated ({s.client_cpu_share:.0%} of a core, "
                f"event-loop lag p50 {s.client_loop_lag_ms_p50:.1f} ms): its latencies include client delay; "
                "lower the load or add generator processes (--processes)"
            )
    return buffer.getvalue()


def plot(summaries: list[Summary], title: str) -> bytes:
    """PNG: TTFT and TPOT p50/p99 and goodput (or request throughput) against offered load."""
    labels = [s.load for s in summaries]
    x = list(range(len(summaries)))
    fig = Figure(figsize=(10, 3.8))
    lat, good = fig.subplots(1, 2)
    series: tuple[tuple[str, list[Stat], str], ...] = (
        ("TTFT", [s.ttft for s in summaries], "#1f77b4"),
        ("TPOT", [s.tpot for s in summaries], "#d62728"),
    )
    for name, stats, color in series:
        lat.plot(x, [st.p50 or float("nan") for st in stats], marker="o", color=color, label=f"{name} p50")
        lat.plot(
            x,
            [st.p99 or float("nan") for st in stats],
            marker="x",
            linestyle="--",
            color=color,
            label=f"{name} p99",
        )
    lat.set_yscale("log")
    lat.set_ylabel("ms")
    lat.set_title("Latency against load")
    lat.legend(frameon=False, fontsize=8)
    has_slo = any(s.goodput is not None for s in summaries)
    good.plot(x, [s.request_throughput for s in summaries], marker="o", color="#7f7f7f", label="requests/s")
    if has_slo:
        good.plot(x, [s.goodput or 0.0 for s in summaries], marker="o", color="#2ca02c", label="goodput (within SLO)")
    good.set_title("Throughput against load")
    good.set_ylabel("requests/s")
    good.legend(frameon=False, fontsize=8)
    for ax in (lat, good):
        ax.set_xticks(x, labels, rotation=30, fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()
