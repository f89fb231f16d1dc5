"""``tokenomy compress`` (the context compressor, offline) and ``tokenomy optimize caps`` (caps from the ledger)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from tokenomy.cli_options import LEDGER_CONFIG_HELP, config_option
from tokenomy.config.optimize import MAX_COMPRESS_RATIO
from tokenomy.optimize.compressor import METHODS, Method, compress
from tokenomy.reports.timeparse import HELP as WHEN_HELP
from tokenomy.reports.timeparse import WhenType


@click.command("compress")
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='JSON lines: {"id", "context", "query"}.',
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help='JSON lines: {"id", "compressed", "original_tokens", "compressed_tokens"}.',
)
@click.option(
    "--ratio",
    type=click.FloatRange(1, MAX_COMPRESS_RATIO, min_open=True),
    required=True,
    help="How many times smaller the context should get (e.g. 4).",
)
@click.option("--method", type=click.Choice(METHODS), default="condensed", show_default=True)
@click.option(
    "--model",
    default="gpt-4o",
    show_default=True,
    help="Count tokens with this model's tokenizer (OpenAI models exact, others approximate).",
)
def compress_command(input_path: Path, output_path: Path, ratio: float, method: Method, model: str) -> None:
    """Compress each context around its query, write the results and print a summary."""  # fmt: skip
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from tokenomy.tokens.count import TokenCounter

    encode, source = TokenCounter().counter_for(model, None)
    lines = input_path.read_bytes().splitlines()
    achieved: list[float] = []
    seconds: list[float] = []
    before_total = after_total = 0
    errors: list[str] = []
    err = Console(stderr=True)
    with output_path.open("wb") as out, Progress(console=err, transient=True, disable=len(lines) < 20) as progress:
        bar = progress.add_task("compressing", total=len(lines))
        for number, line in enumerate(lines, 1):
            progress.advance(bar)
            if not line.strip():
                continue
            item = _item(line, number, errors)
            if item is None:
                continue
            started = time.perf_counter()
            result = compress(item["context"], item["query"], ratio, method)
            seconds.append(time.perf_counter() - started)
            before, after = encode(item["context"]), encode(result.text)
            before_total, after_total = before_total + before, after_total + after
            achieved.append(before / max(after, 1))
            record = {"id": item.get("id"), "compressed": result.text, "original_tokens": before,
                      "compressed_tokens": after}  # fmt: skip
            out.write(orjson.dumps(record) + b"\n")
    table = Table(title=f"tokenomy compress: {method}, ratio {ratio:g} ({source} tokens, {model})")
    for column in ("items", "tokens before", "tokens after", "ratio (median)", "ratio (overall)", "ms/item p50",
                   "ms/item max"):  # fmt: skip
        table.add_column(column, justify="right")
    if achieved:
        table.add_row(
            str(len(achieved)), str(before_total), str(after_total), f"{statistics.median(achieved):.2f}",
            f"{before_total / max(after_total, 1):.2f}", f"{1000 * statistics.median(seconds):.1f}",
            f"{1000 * max(seconds):.1f}",
        )  # fmt: skip
    Console().print(table)
    for message in errors[:20]:
        click.echo(message, err=True)
    if errors:
        click.echo(f"{len(errors)} line(s) skipped.", err=True)
        sys.exit(1)


def _item(line: bytes, number: int, errors: list[str]) -> dict[str, Any] | None:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        errors.append(f"line {number}: not JSON ({exc})")
        return None
    if not isinstance(item, dict):
        errors.append(f"line {number}: expected an object with id, context and query")
        return None
    for key in ("context", "query"):
        if not isinstance(item.get(key), str):
            errors.append(f"line {number}: {key!r} must be a string")
            return None
    return item


@click.group("optimize")
def optimize_group() -> None:
    """Tune the optimize stage from the ledger."""


@optimize_group.command("caps")
@config_option(LEDGER_CONFIG_HELP)
@click.option("--since", type=WhenType(), default=None, help=f"Only answers from then on: {WHEN_HELP}.")
@click.option("--percentile", type=click.FloatRange(50, 100), default=99.0, show_default=True)
@click.option(
    "--margin",
    type=click.FloatRange(1, 10),
    default=1.5,
    show_default=True,
    help="The cap is the percentile times this.",
)
@click.option(
    "--min-requests",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Tasks with fewer answers get no cap.",
)
def caps_command(
    config_path: Path | None, since: float | None, percentile: float, margin: float, min_requests: int
) -> None:
    """Suggest per-task max_tokens caps (printed as optimize rules for the config)."""  # fmt: skip
    from tokenomy.config import ConfigError, load_config
    from tokenomy.ledger.stores import StoreUnavailable, store_for
    from tokenomy.optimize.caps import as_rules_yaml, learn_caps

    try:
        config = load_config(config_path)
        store = store_for(config.ledger)
        caps = learn_caps(store, since=since, percentile=percentile, margin=margin, min_requests=min_requests)
    except ConfigError as exc:
        raise click.ClickException(f"{exc.source}: " + "; ".join(str(i) for i in exc.issues)) from None
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a missing or unreadable ledger
        raise click.ClickException(f"cannot read the ledger: {exc}") from None
    for cap in caps:
        if cap.max_tokens is None:
            click.echo(f"# {cap.task}: {cap.answers} answers, fewer than {min_requests}: no cap", err=True)
    click.echo(as_rules_yaml(caps, percentile, margin), nl=False)
