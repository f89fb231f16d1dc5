"""The ``tokenomy`` command line: serve, report, cache, router, keys, config check and version."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from tokenomy import __version__
from tokenomy.cache.cli import cache_group
from tokenomy.config import ConfigError, load_config
from tokenomy.distill.cli import distill
from tokenomy.keys.cli import keys
from tokenomy.quantize.cli import quantize_command
from tokenomy.reports.model import FORMATS, GROUP_BYS, Format, GroupBy
from tokenomy.reports.timeparse import HELP as WHEN_HELP
from tokenomy.reports.timeparse import WhenType
from tokenomy.routing.cli import router


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Tokenomy: an LLM gateway that makes every call cheaper and faster, and proves it."""


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(f"tokenomy {__version__}")


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="TOKENOMY_CONFIG",
    help="YAML config file (default: the embedded local models).",
)
@click.option("--host", default=None, help="Address to bind (default: server.host in the config).")
@click.option("--port", type=int, default=None, help="Port to bind (default: server.port in the config).")
def serve(config_path: Path | None, host: str | None, port: int | None) -> None:
    """Run the gateway."""
    from tokenomy.distill.student import StudentError
    from tokenomy.server.run import run

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    try:
        run(config, host=host, port=port)
    except StudentError as exc:  # a distilled model that cannot be loaded: refuse to start
        click.echo(f"cannot start: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="TOKENOMY_CONFIG",
    help="YAML config file whose ledger to read (as for serve).",
)
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
def report(
    config_path: Path | None,
    since: float | None,
    until: float | None,
    by: GroupBy,
    fmt: Format,
    out: Path | None,
    show_prompts: bool,
    top: int,
) -> None:
    """Spend, baseline, savings by lever, token economy and latency from the usage ledger."""
    from tokenomy.reports.command import report as run_report

    run_report(
        config_path=config_path, since=since, until=until, by=by, fmt=fmt, out=out, show_prompts=show_prompts, top=top
    )


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
    missing = sorted(
        {
            dep.api_key.env
            for model in config.models
            for dep in model.deployments
            if dep.api_key is not None and dep.api_key.resolve() is None
        }
    )
    deployments = sum(len(m.deployments) for m in config.models)
    click.echo(f"{path}: OK ({len(config.models)} models, {deployments} deployments)")
    for env in missing:
        click.echo(f"  warning: environment variable {env} is not set (its deployments will fail)", err=True)


main.add_command(keys)
main.add_command(router)
main.add_command(cache_group)
main.add_command(quantize_command)
main.add_command(distill)


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    main()
