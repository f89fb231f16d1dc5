"""``tokenomy distill train`` and ``tokenomy distill evaluate``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenomy.reports.timeparse import HELP as WHEN_HELP
from tokenomy.reports.timeparse import WhenType

if TYPE_CHECKING:
    from tokenomy.config import GatewayConfig
    from tokenomy.distill.data import Examples
    from tokenomy.distill.encoder_student import EncoderStudent
    from tokenomy.distill.finetune import FineTuneSettings
    from tokenomy.distill.student import Student

_FILE = click.Path(dir_okay=False, path_type=Path)
LORA_STUDENT = "smollm-lora"


@click.group("distill")
def distill() -> None:
    """Teach a small student a labelling task and measure it."""


@distill.command("train")
@click.option(
    "--data",
    "data_path",
    type=_FILE,
    default=None,
    help='JSONL of {"text" | "messages", "label"} ("answer" for smollm-lora).',
)
@click.option("--from-ledger", is_flag=True, help="Train on the teacher's logged answers for --task instead.")
@click.option("--task", default=None, help="With --from-ledger: the task whose requests to learn.")
@click.option("--since", type=WhenType(), default=None, help=f"With --from-ledger: {WHEN_HELP} (default 7d).")
@click.option("--teacher", default=None, help="With --from-ledger: only answers served by this model.")
@click.option(
    "--config",
    "config_path",
    type=_FILE,
    default=None,
    help="With --from-ledger: the gateway config whose ledger to read (default: as `serve` finds it).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--val", "val_path", type=_FILE, default=None, help="Labelled data to choose the abstention threshold on."
)
@click.option(
    "--student",
    type=click.Choice(["minilm-ngram", "minilm-head", "minilm-finetuned", LORA_STUDENT]),
    default="minilm-ngram",
    show_default=True,
    help="minilm-head: a head on MiniLM vectors; minilm-ngram: that plus a head on word and character n-grams; "
    "minilm-finetuned: MiniLM itself fine-tuned and exported to ONNX; smollm-lora: a LoRA adapter that teaches "
    "the embedded SmolLM2 to answer in free text (these two need the tokenomy[distill] extra).",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 50),
    default=None,
    help="minilm-finetuned, smollm-lora: passes over the training data (default 4 and 1).",
)
@click.option(
    "--max-steps",
    type=click.IntRange(1),
    default=None,
    help="smollm-lora: stop after this many batches of 16 (a quick trial).",
)
@click.option("--int8", is_flag=True, help="minilm-finetuned: serve int8 weights (a quarter of the size, less CPU).")
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1),
    default=0.99,
    show_default=True,
    help="Accuracy wanted on the answers the student gives; it abstains below the matching confidence.",
)
def train(
    data_path: Path | None,
    from_ledger: bool,
    task: str | None,
    since: float | None,
    teacher: str | None,
    config_path: Path | None,
    out: Path,
    val_path: Path | None,
    student: str,
    epochs: int | None,
    max_steps: int | None,
    int8: bool,
    target_accuracy: float,
) -> None:
    """Train a student on labelled examples (or the ledger's teacher answers) and write it to OUT."""
    from tokenomy.distill.data import DistillDataError, load_examples
    from tokenomy.distill.embed import Encoder
    from tokenomy.distill.finetune import FineTuneSettings
    from tokenomy.distill.train import train_student

    if from_ledger == (data_path is not None):
        raise click.UsageError("give --data FILE or --from-ledger --task TASK (one of them)")
    if from_ledger and not task:
        raise click.UsageError("--from-ledger needs --task")
    if student == LORA_STUDENT:
        _train_lora(data_path, task, since, teacher, config_path, out, epochs, max_steps)
        return
    extra: dict[str, object] = {}
    try:
        if data_path is not None:
            examples = load_examples(data_path)
        else:
            from tokenomy.distill.ledger import ledger_examples

            assert task is not None
            found = ledger_examples(_config(config_path), task, since=since, teacher=teacher)
            examples = found.examples
            extra = {"task": task, "logged_requests": found.logged, "left_out": found.skipped}
        val = load_examples(val_path) if val_path else None
        if student == "minilm-finetuned":
            trained: Student | EncoderStudent = _finetune(
                examples, out, val, target_accuracy, FineTuneSettings(epochs=epochs or 4, int8=int8), extra
            )
        else:
            trained = train_student(
                examples, Encoder().encode, val=val, target=target_accuracy, lexical=student == "minilm-ngram"
            )
            trained.info |= {k: v for k, v in extra.items() if k == "task"}
            trained.save(out)
    except DistillDataError as exc:
        raise click.ClickException(str(exc)) from None
    summary = {"out": str(out), "labels": len(trained.labels), "threshold": trained.threshold, **extra}
    click.echo(json.dumps(summary | trained.info))


def _train_lora(
    data_path: Path | None,
    task: str | None,
    since: float | None,
    teacher: str | None,
    config_path: Path | None,
    out: Path,
    epochs: int | None,
    max_steps: int | None,
) -> None:
    """``--student smollm-lora``: free-text answers (``answer``, or the teacher's logged answers as they were)."""
    from tokenomy.distill.data import DistillDataError
    from tokenomy.distill.dialogues import ledger_dialogues, load_dialogues
    from tokenomy.distill.finetune import MissingExtraError
    from tokenomy.distill.lora_train import LoraSettings, train_lora_student

    progress = logging.getLogger("tokenomy.distill")
    if not progress.handlers and not logging.getLogger().handlers:  # the step count and loss, on stderr
        progress.addHandler(logging.StreamHandler())
        progress.setLevel(logging.INFO)
    extra: dict[str, object] = {}
    try:
        if data_path is not None:
            data = load_dialogues(data_path)
        else:
            assert task is not None
            data, logged, skipped = ledger_dialogues(_config(config_path), task, since=since, teacher=teacher)
            extra = {"task": task, "logged_requests": logged, "left_out": skipped}
        settings = LoraSettings(epochs=epochs or 1, max_steps=max_steps)
        trained = train_lora_student(data, out, settings=settings, info={k: v for k, v in extra.items() if k == "task"})
    except (DistillDataError, MissingExtraError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"out": str(out), **extra} | trained.info))


def _finetune(
    examples: Examples,
    out: Path,
    val: Examples | None,
    target: float,
    settings: FineTuneSettings,
    extra: dict[str, object],
) -> EncoderStudent:
    from tokenomy.distill.finetune import MissingExtraError, finetune_student

    try:
        return finetune_student(
            examples,
            out,
            val=val,
            target=target,
            settings=settings,
            info={k: v for k, v in extra.items() if k == "task"},
        )
    except MissingExtraError as exc:
        raise click.ClickException(str(exc)) from None


def _config(path: Path | None) -> GatewayConfig:
    from tokenomy.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"{exc.source}: " + "; ".join(str(i) for i in exc.issues)) from None


@distill.command("evaluate")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="A student directory.")
@click.option("--data", "data_path", type=_FILE, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def evaluate(model_dir: Path, data_path: Path, fmt: str) -> None:
    """Accuracy, answered share and latency of a student on labelled data (exact-match answers for smollm-lora)."""
    from tokenomy.distill.data import DistillDataError, load_examples
    from tokenomy.distill.dialogues import load_dialogues
    from tokenomy.distill.embed import Encoder
    from tokenomy.distill.encoder_student import EncoderStudent
    from tokenomy.distill.errors import StudentError
    from tokenomy.distill.evaluate import evaluate_student
    from tokenomy.distill.lora_evaluate import evaluate_lora_student
    from tokenomy.distill.lora_student import LoraStudent
    from tokenomy.distill.student import load_student

    try:
        student = load_student(model_dir)
        if isinstance(student, LoraStudent):
            figures = evaluate_lora_student(student, load_dialogues(data_path))
        else:
            encoder = None if isinstance(student, EncoderStudent) else Encoder()
            figures = evaluate_student(student, load_examples(data_path), encoder, model_dir)
    except (DistillDataError, StudentError) as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        click.echo(f"{key:30} {value:.4f}" if isinstance(value, float) else f"{key:30} {value}")
