"""``tokenomy report``: load the config, query its ledger with progress on stderr, render, write."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from tokenomy.config import ConfigError, GatewayConfig, load_config
from tokenomy.ledger.stores import LedgerStore, StoreUnavailable, store_for
from tokenomy.reports.model import Format, GroupBy, Report, ReportQuery, Sections, Window
from tokenomy.reports.query import ReportError, one_line, run_query

TABLE_WIDTH = 160
"""Columns of the table report when it does not go to a terminal."""


class StderrProgress:
    """Query steps as spinners on stderr (shown only when stderr is a terminal; gone when done)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> StderrProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()

    def start(self, steps: Sequence[str]) -> None:
        """Show the steps about to run."""
        for step in steps:
            self._tasks[step] = self._progress.add_task(step, total=1)

    def finish(self, step: str) -> None:
        """Tick a step off."""
        if step in self._tasks:
            self._progress.update(self._tasks[step], completed=1)


def sections_for(fmt: Format, *, top: int, show_prompts: bool) -> Sections:
    """JSON and CSV hold only the groups; the table adds token economy and prompts, HTML the time series too."""
    if fmt in ("json", "csv"):
        return Sections()
    return Sections(economy=True, series=fmt == "html", top_prompts=top, show_prompts=show_prompts)


def open_ledger(config_path: Path | None) -> tuple[GatewayConfig, LedgerStore]:
    """The config (loaded as ``serve`` loads it) and its ledger store; failures as one-line click errors."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(one_line(f"{exc.source}: " + "; ".join(str(i) for i in exc.issues))) from None
    try:
        return config, store_for(config.ledger)
    except StoreUnavailable as exc:
        raise click.ClickException(one_line(str(exc))) from None


def report(
    *,
    config_path: Path | None,
    since: float | None,
    until: float | None,
    by: GroupBy,
    fmt: Format,
    out: Path | None,
    show_prompts: bool,
    top: int,
    compare_with: str | None = None,
) -> None:
    """Run the command; every failure is a one-line :class:`click.ClickException`."""
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be earlier than --until")
    if fmt == "html" and out is None and sys.stdout.isatty():
        raise click.UsageError("--format html writes a file: give --out FILE (or redirect stdout)")
    _config, store = open_ledger(config_path)
    sections = sections_for(fmt, top=top, show_prompts=show_prompts)
    query = ReportQuery(by=by, window=Window(since, until), sections=sections, compare_with=compare_with or None)
    err = Console(stderr=True)
    with StderrProgress(err) as progress:
        try:
            result = run_query(store, query, progress)
        except ReportError as exc:
            raise click.ClickException(str(exc)) from None
        from tokenomy.reports import semantic

        result.semantic_budget, result.semantic = semantic.load(_config.cache.semantic.audit_file)
        text = render(result, fmt, to_terminal=out is None and sys.stdout.isatty(), progress=progress)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(one_line(f"cannot write {out}: {exc.strerror or exc}")) from None
    err.print(f"wrote {out} ({result.total.sums.requests:,} records, {len(result.groups)} groups)", highlight=False)


def render(report: Report, fmt: Format, *, to_terminal: bool = False, progress: StderrProgress | None = None) -> str:
    """The report as text in ``fmt`` (``table`` is colored only for a terminal)."""
    if fmt == "json":
        from tokenomy.reports.formats import to_json

        return to_json(report)
    if fmt == "csv":
        from tokenomy.reports.formats import to_csv

        return to_csv(report)
    if fmt == "html":
        from tokenomy.reports import render_html

        if progress is not None:
            progress.start(["charts"])
        return render_html.render(report, on_chart=progress.finish if progress is not None else None)
    from tokenomy.reports.render_table import render as render_table

    buffer = io.StringIO()
    if to_terminal:
        console = Console(file=buffer, force_terminal=True, width=shutil.get_terminal_size().columns)
    else:
        console = Console(file=buffer, width=TABLE_WIDTH, color_system=None, force_terminal=False)
    console.print(render_table(report))
    return buffer.getvalue()
