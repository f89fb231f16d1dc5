"""Click options that several commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

SERVE_CONFIG_HELP = "YAML config file (default: the embedded local models)."
LEDGER_CONFIG_HELP = "YAML config file whose ledger to read (as for serve)."


def config_option(help: str = SERVE_CONFIG_HELP) -> Callable[[F], F]:
    """``--config PATH`` (also ``TOKENOMY_CONFIG``), passed to the command as ``config_path``."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="TOKENOMY_CONFIG",
        help=help,
    )
