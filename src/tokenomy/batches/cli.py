"""The ``tokenomy batch run`` command: a progress bar around :func:`run_offline`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tokenomy.batches.offline import Summary, errors_path, run_offline
from tokenomy.batches.rate_limit import TokenBucket, local_pace
from tokenomy.config.models import GatewayConfig


def run_command(
    config: GatewayConfig,
    input_path: Path,
    model: str | None,
    output: Path | None,
    concurrency: int,
    ray_address: str | None = None,
    config_path: Path | None = None,
    rpm: float | None = None,
) -> int:
    """Run the job with a progress bar on stderr; the exit status (1 when any line failed)."""
    output = output or input_path.with_suffix(".output.jsonl")
    with input_path.open("rb") as handle:
        total = sum(1 for raw in handle if raw.strip())
    columns = (TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("batch", total=total)

        def advance(summary: Summary) -> None:
            progress.update(task, completed=summary.skipped + summary.completed + summary.failed)

        try:
            if ray_address:
                from tokenomy.batches.ray_run import run_on_ray

                summary = run_on_ray(
                    ray_address, config_path, input_path, output, model, concurrency, on_progress=advance, rpm=rpm
                )
            else:
                pace = local_pace(TokenBucket(rpm / 60)) if rpm else None
                summary = asyncio.run(run_offline(config, input_path, output, model, concurrency, advance, pace))
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            return 2
    click.echo(
        f"{summary.total} lines: {summary.completed} completed, {summary.failed} failed, "
        f"{summary.skipped} already done; output {output}, errors {errors_path(output)}"
        + (f"; {summary.paced} requests paced to {rpm:g} a minute" if rpm else "")
    )
    return 1 if summary.failed else 0
