"""``tokenomy advise``: load the config, read its ledger, print the ranked actions (table or JSON)."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from tokenomy.advise.advisor import advise
from tokenomy.advise.model import Advice
from tokenomy.reports.command import open_ledger
from tokenomy.reports.model import Window
from tokenomy.reports.query import ReportError
from tokenomy.reports.render_table import short_money as money


def run(
    *, config_path: Path | None, since: float | None, until: float | None, fmt: str, evidence: Sequence[Path]
) -> None:
    """Run the command; every failure is a one-line :class:`click.ClickException`."""
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be earlier than --until")
    config, store = open_ledger(config_path)
    try:
        result = advise(store, config, Window(since, until), evidence)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(render_text(result, to_terminal=sys.stdout.isatty()), nl=False)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_text(advice: Advice, *, to_terminal: bool = False) -> str:
    """The advice as panels, one per recommendation, in rank order."""
    buffer = io.StringIO()
    width = shutil.get_terminal_size().columns if to_terminal else 120
    console = Console(
        file=buffer, width=width, force_terminal=to_terminal, color_system=None if not to_terminal else "auto"
    )
    console.print(
        f"{advice.records:,} successful requests, {money(advice.spend_usd)} spent, "
        f"{_when(advice.first_ts)} to {_when(advice.last_ts)} ({advice.source})",
        highlight=False,
    )
    for note in advice.notes:
        console.print(f"note: {note}", highlight=False)
    if not advice.recommendations:
        console.print("No action found that would have saved money in this window.")
    for i, rec in enumerate(advice.recommendations, 1):
        body = Group(
            Text(
                f"saves ~{money(rec.monthly_saving_usd)}/month ({money(rec.window_saving_usd)} over the window), "
                f"confidence {rec.confidence}"
            ),
            Text("evidence:"),
            *(Text(f"  - {line}") for line in rec.evidence),
            Text("do:"),
            *(Text(f"  {line}") for line in rec.action.splitlines()),
            Text("assumes:"),
            *(Text(f"  - {line}") for line in rec.assumptions),
        )
        console.print(Panel(body, title=f"{i}. {rec.title}", title_align="left"))
    return buffer.getvalue()
