"""The ``tokenomy eval`` and ``tokenomy replay`` commands (options and error reporting only)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from tokenomy.cli_options import config_option
from tokenomy.config import ConfigError, load_config
from tokenomy.reports.timeparse import HELP as WHEN_HELP
from tokenomy.reports.timeparse import WhenType

F = TypeVar("F", bound=Callable[..., Any])


def _models(value: str) -> list[str]:
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models:
        raise click.BadParameter("name at least one model")
    if len(set(models)) != len(models):
        raise click.BadParameter("a model is named twice")
    return models


def _call_options(config_help: str) -> Callable[[F], F]:
    """The options both commands take: where the gateway is, how many calls at once, the budget."""
    options = [
        config_option(config_help),
        click.option("--gateway", "gateway_url", default=None, help="URL of a running gateway to call instead."),
        click.option(
            "--api-key", envvar="TOKENOMY_API_KEY", default=None, help="Key for the gateway ($TOKENOMY_API_KEY)."
        ),
        click.option("--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True),
        click.option(
            "--budget-usd", type=click.FloatRange(0, min_open=True), default=None, help="Stop before spending more."
        ),
    ]

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@click.command("eval")
@click.option(
    "--dataset",
    "dataset_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines or CSV file of items (see docs/evaluation.md).",
)
@click.option("--from-ledger", is_flag=True, help="Take the items from the ledger's stored prompts instead.")
@click.option("--since", type=WhenType(), default=None, help=f"With --from-ledger: {WHEN_HELP} (default 7d).")
@click.option(
    "--sample", type=click.IntRange(1), default=None, help="With --from-ledger: at most N requests, at random."
)
@click.option("--models", "models_text", required=True, help="Comma-separated model names to evaluate.")
@click.option("--scorer", default="exact", show_default=True, help="NAME or NAME:ARGS (see docs/evaluation.md).")
@click.option(
    "--task", default=None, help="Task of items without one (default: 'default'); with --from-ledger, the task."
)
@_call_options("Gateway config: served in process, or used for prices with --gateway.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N items.")
@click.option("--repeats", type=click.IntRange(1, 100), default=1, show_default=True, help="Calls per item and model.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("eval-results"),
    show_default=True,
    help="Directory for per-call results, outcomes, plot and report.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out without calling finished items again.")
@click.option("--skip-bad", is_flag=True, help="Skip (and count) malformed dataset lines instead of stopping.")
@click.option(
    "--write-policy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the per-task policy file the policy router loads.",
)
@click.option(
    "--min-quality",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="The bar for --write-policy (compared with the lower bound of each model's 95% CI).",
)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="ADDRESS",
    help="Shard the items over a Ray cluster: its address, or 'auto' (the local one, started if needed).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def eval_command(
    dataset_path: Path | None,
    from_ledger: bool,
    since: float | None,
    sample: int | None,
    models_text: str,
    scorer: str,
    task: str | None,
    config_path: Path | None,
    gateway_url: str | None,
    api_key: str | None,
    concurrency: int,
    limit: int | None,
    repeats: int,
    budget_usd: float | None,
    out: Path,
    resume: bool,
    skip_bad: bool,
    write_policy: Path | None,
    min_quality: float,
    ray_address: str | None,
    fmt: str,
) -> None:
    """Measure candidate models on a dataset: quality with confidence, cost and latency side by side."""
    from tokenomy.evaluate.command import EvalError, EvalOptions, render, run_sync
    from tokenomy.evaluate.dataset import DatasetError, load_dataset
    from tokenomy.evaluate.ledger_source import LedgerSourceError, ledger_dataset
    from tokenomy.evaluate.scorers.base import ScorerError, make_scorer

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per call otherwise
    err = Console(stderr=True)
    models = _models(models_text)
    try:
        make_scorer(scorer)  # an unknown scorer fails before anything else happens
        config = load_config(config_path) if (config_path is not None or gateway_url is None) else None
        if from_ledger == (dataset_path is not None):
            raise click.UsageError("give --dataset FILE or --from-ledger (one of them)")
        if from_ledger:
            if task is None or config is None:
                raise click.UsageError("--from-ledger needs --task and the gateway's --config (for its ledger)")
            dataset = ledger_dataset(config, task, since=since, sample=sample)
        else:
            assert dataset_path is not None
            dataset = load_dataset(dataset_path, task=task, skip_bad=skip_bad)
        options = EvalOptions(
            models=models,
            scorer=scorer,
            out=out,
            config=config,
            gateway_url=gateway_url,
            api_key=api_key,
            concurrency=concurrency,
            limit=limit,
            repeats=repeats,
            budget_usd=budget_usd,
            resume=resume,
            write_policy=write_policy,
            min_quality=min_quality,
            progress=True,
            ray=ray_address,
        )
        doc = run_sync(dataset, options, err)
    except (ConfigError, DatasetError, ScorerError, EvalError, LedgerSourceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    render(doc, fmt, Console(width=200) if not sys.stdout.isatty() else Console())


@click.command("replay")
@click.option("--task", required=True, help="The task whose logged requests to replay.")
@click.option("--candidate", required=True, help="The model to replay them on.")
@click.option("--since", type=WhenType(), default=None, help=f"Start of the window: {WHEN_HELP} (default 7d).")
@click.option("--sample", type=click.IntRange(1), default=500, show_default=True, help="At most N requests, at random.")
@click.option(
    "--scorer",
    default="similarity",
    show_default=True,
    help="How the candidate's answer is compared with the logged one: similarity[:T] or judge:MODEL.",
)
@_call_options("The gateway config whose ledger to read (and to serve in process).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("replay-results"),
    show_default=True,
    help="Directory for per-call results and the outcomes file.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out without calling finished requests again.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def replay_command(
    task: str,
    candidate: str,
    since: float | None,
    sample: int,
    scorer: str,
    config_path: Path | None,
    gateway_url: str | None,
    api_key: str | None,
    concurrency: int,
    budget_usd: float | None,
    out: Path,
    resume: bool,
    fmt: str,
) -> None:
    """Re-run a task's logged requests on a cheaper model: agreement, cost on both, projected monthly saving."""
    import asyncio
    import json

    from tokenomy.evaluate.command import EvalError, EvalOptions
    from tokenomy.evaluate.ledger_source import LedgerSourceError
    from tokenomy.evaluate.replay import render_replay, run_replay
    from tokenomy.evaluate.scorers.base import ScorerError, make_scorer

    logging.getLogger("httpx").setLevel(logging.WARNING)
    err = Console(stderr=True)
    try:
        make_scorer(scorer)
        config = load_config(config_path)
        options = EvalOptions(
            models=[candidate],
            scorer=scorer,
            out=out,
            config=config,
            gateway_url=gateway_url,
            api_key=api_key,
            concurrency=concurrency,
            budget_usd=budget_usd,
            resume=resume,
        )
        doc = asyncio.run(run_replay(config, task, options, since=since, sample=sample))
    except (ConfigError, ScorerError, EvalError, LedgerSourceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print(f"interrupted; finished calls are in {out} (run again with --resume to continue)")
        sys.exit(130)
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else render_replay(doc))
