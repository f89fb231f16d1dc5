"""``tokenomy distill train`` and ``tokenomy distill evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import click

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group("distill")
def distill() -> None:
    """Teach a small student a labelling task and measure it."""


@distill.command("train")
@click.option("--data", "data_path", type=_FILE, required=True, help='JSONL of {"text" | "messages", "label"}.')
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--val", "val_path", type=_FILE, default=None, help="Labelled data to choose the abstention threshold on."
)
@click.option(
    "--student",
    type=click.Choice(["minilm-ngram", "minilm-head"]),
    default="minilm-ngram",
    show_default=True,
    help="minilm-head: a head on MiniLM vectors; minilm-ngram: that plus a head on word and character n-grams.",
)
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1),
    default=0.99,
    show_default=True,
    help="Accuracy wanted on the answers the student gives; it abstains below the matching confidence.",
)
def train(data_path: Path, out: Path, val_path: Path | None, student: str, target_accuracy: float) -> None:
    """Train a student on labelled examples and write it to OUT."""
    from tokenomy.distill.data import DistillDataError, load_examples
    from tokenomy.distill.embed import Encoder
    from tokenomy.distill.train import train_student

    try:
        examples = load_examples(data_path)
        val = load_examples(val_path) if val_path else None
        trained = train_student(
            examples, Encoder().encode, val=val, target=target_accuracy, lexical=student == "minilm-ngram"
        )
    except DistillDataError as exc:
        raise click.ClickException(str(exc)) from None
    trained.save(out)
    click.echo(
        json.dumps({"out": str(out), "labels": len(trained.labels), "threshold": trained.threshold, **trained.info})
    )


@distill.command("evaluate")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="A student directory.")
@click.option("--data", "data_path", type=_FILE, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def evaluate(model_dir: Path, data_path: Path, fmt: str) -> None:
    """Accuracy, answered share and latency of a student on labelled data."""
    from tokenomy.distill.data import DistillDataError, load_examples
    from tokenomy.distill.embed import Encoder
    from tokenomy.distill.evaluate import evaluate_student
    from tokenomy.distill.student import StudentError, load_student

    try:
        student = load_student(model_dir)
        figures = evaluate_student(student, load_examples(data_path), Encoder(), model_dir)
    except (DistillDataError, StudentError) as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        click.echo(f"{key:30} {value:.4f}" if isinstance(value, float) else f"{key:30} {value}")
