"""The ``tokenomy`` command line: serve, report, advise, eval, replay, compress, bench, plan, router, cache, keys."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import click

from tokenomy import __version__
from tokenomy.cli_options import LEDGER_CONFIG_HELP, config_option
from tokenomy.config import ConfigError, load_config
from tokenomy.config.secrets import unset_secrets
from tokenomy.reports.model import FORMATS, GROUP_BYS, Format, GroupBy
from tokenomy.reports.timeparse import HELP as WHEN_HELP
from tokenomy.reports.timeparse import WhenType

LAZY_COMMANDS = {
    "keys": "tokenomy.keys.cli:keys",
    "router": "tokenomy.routing.cli:router",
    "cache": "tokenomy.cache.cli:cache_group",
    "eval": "tokenomy.evaluate.cli:eval_command",
    "replay": "tokenomy.evaluate.cli:replay_command",
    "compress": "tokenomy.optimize.cli:compress_command",
    "optimize": "tokenomy.optimize.cli:optimize_group",
    "bench": "tokenomy.planning.bench_cli:bench",
    "plan": "tokenomy.planning.plan_cli:plan_command",
    "quantize": "tokenomy.quantize.cli:quantize_command",
    "distill": "tokenomy.distill.cli:distill",
}
"""Commands whose modules are imported only when they run (or for ``--help``): they bring numpy, rich
and more, which ``tokenomy serve`` would otherwise hold in every gateway process."""


class LazyGroup(click.Group):
    """A command group that imports the commands of :data:`LAZY_COMMANDS` when they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="tokenomy", message="%(prog)s %(version)s")
def main() -> None:
    """Tokenomy: an LLM gateway that makes every call cheaper and faster, and proves it."""


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(f"tokenomy {__version__}")


@main.command()
@config_option()
@click.option("--host", default=None, help="Address to bind (default: server.host in the config).")
@click.option("--port", type=int, default=None, help="Port to bind (default: server.port in the config).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text or one JSON object per line (default: server.log_format in the config).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Gateway processes sharing the port (default: the usable cores; 1 with embedded local models).",
)
def serve(
    config_path: Path | None, host: str | None, port: int | None, log_format: str | None, workers: int | None
) -> None:
    """Run the gateway."""
    from tokenomy.distill.errors import StudentError
    from tokenomy.server.run import run
    from tokenomy.server.workers import default_workers

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    try:
        run(config, host=host, port=port, log_format=log_format, workers=workers or default_workers(config))
    except StudentError as exc:  # a distilled model that cannot be loaded: refuse to start
        click.echo(f"cannot start: {exc}", err=True)
        sys.exit(2)


@main.command()
@config_option(LEDGER_CONFIG_HELP)
@click.option("--since", type=WhenType(), default=None, help=f"Start of the window: {WHEN_HELP}.")
@click.option(
    "--until",
    type=WhenType(end_of_day=True),
    default=None,
    help="End of the window (exclusive; a date alone includes that day).",
)
@click.option("--by", type=click.Choice(GROUP_BYS), default="task", show_default=True, help="Group records by.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to FILE instead of stdout.",
)
@click.option("--show-prompts", is_flag=True, help="Show stored prompt text, not only its hash.")
@click.option("--top", type=click.IntRange(0), default=10, show_default=True, help="Most expensive prompts to list.")
@click.option(
    "--compare-with",
    default="gpt-4o-mini",
    show_default=True,
    help="Also price the chat and completion tokens on this hosted model (a comparison, not a saving; '' for none).",
)
@click.option("--shadow", is_flag=True, help="Shadow traffic instead: candidate copies against production answers.")
def report(
    config_path: Path | None,
    since: float | None,
    until: float | None,
    by: GroupBy,
    fmt: Format,
    out: Path | None,
    show_prompts: bool,
    top: int,
    compare_with: str,
    shadow: bool,
) -> None:
    """Spend, baseline, savings by lever, token economy and latency from the usage ledger."""
    if shadow:
        from tokenomy.evaluate.shadow_report import shadow_command

        shadow_command(config_path, since, until, fmt)
        return
    from tokenomy.reports.command import report as run_report

    run_report(
        config_path=config_path,
        since=since,
        until=until,
        by=by,
        fmt=fmt,
        out=out,
        show_prompts=show_prompts,
        top=top,
        compare_with=compare_with,
    )


@main.command()
@config_option(LEDGER_CONFIG_HELP)
@click.option("--since", type=WhenType(), default=None, help=f"Start of the window: {WHEN_HELP}.")
@click.option("--until", type=WhenType(end_of_day=True), default=None, help="End of the window (exclusive).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--evidence",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    multiple=True,
    help="Policy file with measured quality per task and model (repeatable).",
)
def advise(
    config_path: Path | None, since: float | None, until: float | None, fmt: str, evidence: tuple[Path, ...]
) -> None:
    """Rank actions by the money they would save, from the usage ledger."""
    from tokenomy.advise.command import run as run_advise

    run_advise(config_path=config_path, since=since, until=until, fmt=fmt, evidence=evidence)


@main.group("config")
def config_group() -> None:
    """Work with configuration files."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_check(path: Path) -> None:
    """Validate PATH and print every error with its location."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    deployments = sum(len(m.deployments) for m in config.models)
    click.echo(f"{path}: OK ({len(config.models)} models, {deployments} deployments)")
    for where, env in unset_secrets(config):
        click.echo(f"  warning: {where} refers to ${{{env}}}, which is not set (what needs it will fail)", err=True)


@main.group("batch")
def batch_group() -> None:
    """Run OpenAI-format batch files (JSONL) through the gateway's pipeline."""


@batch_group.command("run")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", default=None, help="Model for every line (default: each line's body.model).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output JSONL (default: INPUT.output.jsonl); failures go to OUTPUT.errors.jsonl.")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--ray", "ray_address", default=None, help="Shard over this Ray cluster ('local': Ray on this machine).")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="At most this many requests a minute for the whole job (across every Ray worker).")  # fmt: skip
@config_option()
def batch_run(
    input_path: Path,
    model: str | None,
    output: Path | None,
    concurrency: int,
    ray_address: str | None,
    rpm: float | None,
    config_path: Path | None,
) -> None:
    """Run a batch file in this process; run it again to resume after an interruption."""
    from tokenomy.batches.cli import run_command

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    sys.exit(run_command(config, input_path, model, output, concurrency, ray_address, config_path, rpm))


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    main()
