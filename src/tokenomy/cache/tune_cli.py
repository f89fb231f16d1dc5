"""``tokenomy cache tune``: fine-tune the semantic tier's cross-encoder on your own labelled questions.

``--pairs FILE`` (``sentence1,sentence2,label`` or STS-B, as ``tokenomy cache calibrate`` reads) or
``--intents FILE`` (a CSV with a ``text`` column and an intent column: each question is paired with
its nearest others, 1 = same intent; :mod:`~tokenomy.cache.semantic.tuning.intents`). Writes
``cross-encoder.w8.onnx``, ``verifier.json`` and ``report.json`` to ``--out`` and prints the
cross-validated comparison with the starting model and the configuration that serves the result.
Exit status 1, and no model written, when no threshold reaches ``--target-precision`` out of fold,
or the one that does rests on fewer than ``--min-accepted`` accepted pairs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import click
import orjson

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.tuning.settings import TuneSettings

_DEFAULT = TuneSettings()
_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("tune")
@click.option("--pairs", "pairs_path", type=_PATH, help="Labelled pairs: sentence1,sentence2,label (or STS-B).")
@click.option(
    "--intents", "intents_path", type=_PATH, help="Questions with intents: CSV with text and an intent column."
)
@click.option(
    "--group-column",
    help="--pairs: a CSV column naming who or where each pair comes from (a writer, a source). Folds keep "
    "each group whole, so the estimate is one for groups never trained on; the report breaks it down by group.",
)
@click.option("--intent-column", default="intent", show_default=True, help="--intents: the intent column.")
@click.option(
    "--neighbours", type=click.IntRange(1, 20), default=2, show_default=True, help="--intents: pairs per question."
)
@click.option(
    "--balance/--no-balance",
    default=True,
    show_default=True,
    help="--intents: as many same-intent pairs as others (a seeded sample of the commoner label).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory.")
@click.option("--epochs", type=click.IntRange(1, 20), default=_DEFAULT.epochs, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(1e-7, 1e-2), default=_DEFAULT.learning_rate, show_default=True)
@click.option("--folds", type=click.IntRange(2, 20), default=_DEFAULT.folds, show_default=True)
@click.option("--target-precision", type=click.FloatRange(0.5, 1), default=_DEFAULT.target, show_default=True)
@click.option(
    "--min-accepted",
    type=click.IntRange(1),
    default=_DEFAULT.min_accepted,
    show_default=True,
    help="Write a model only if its threshold rests on this many accepted out-of-fold pairs.",
)
@click.option(
    "--verifier",
    type=click.Choice(["refit", "shipped"]),
    default=_DEFAULT.verifier,
    show_default=True,
    help="refit: fit the verifier's regression on these pairs too (gates become a feature); shipped: keep it.",
)
@click.option(
    "--threads", type=click.IntRange(1, 256), default=_DEFAULT.threads, show_default=True, help="PyTorch threads."
)
@click.option("--seed", type=int, default=_DEFAULT.seed, show_default=True)
@click.option("--from", "start", type=_PATH, help="Start from this cross-encoder ONNX file [the shipped one].")
@click.option(
    "--scores",
    "reuse",
    type=_PATH,
    help="An earlier run's scores.csv: reuse its out-of-fold logits instead of training the folds again. "
    "Refused unless it lists the same pairs in the same folds and the report.json beside it names the same "
    "--from model, --seed, --epochs and --learning-rate.",
)
@click.option("--max-steps", type=click.IntRange(1), default=None, hidden=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def tune(
    pairs_path: Path | None, intents_path: Path | None, group_column: str | None, intent_column: str,
    neighbours: int, balance: bool, out: Path, epochs: int, learning_rate: float, folds: int,
    target_precision: float, min_accepted: int, verifier: Literal["refit", "shipped"], threads: int, seed: int,
    start: Path | None, reuse: Path | None,
    max_steps: int | None, fmt: Literal["table", "json"],
) -> None:  # fmt: skip
    """Fine-tune the semantic cache's cross-encoder on your labelled questions, cross-validated."""
    from tokenomy.cache.cli import embedder
    from tokenomy.cache.semantic.tuning.tune import TuneError
    from tokenomy.cache.semantic.tuning.tune import tune as run
    from tokenomy.distill.finetune import MissingExtraError, require_extra

    if (pairs_path is None) == (intents_path is None):
        raise click.UsageError("give one of --pairs FILE or --intents FILE")
    if group_column is not None and pairs_path is None:
        raise click.UsageError("--group-column goes with --pairs FILE")
    try:
        require_extra("cross-encoder tuning", "PyTorch, transformers and onnx", ("torch", "transformers", "onnx"))
    except MissingExtraError as exc:
        raise click.ClickException(str(exc)) from None
    embed = embedder()
    pairs = _pairs(pairs_path, intents_path, group_column, intent_column, neighbours, balance, embed)
    settings = TuneSettings(
        epochs=epochs,
        learning_rate=learning_rate,
        folds=folds,
        target=target_precision,
        seed=seed,
        threads=threads,
        min_accepted=min_accepted,
        verifier=verifier,
        max_steps=max_steps,
    )
    try:
        report = run(
            pairs, out, embed, settings, start=start, reuse=reuse, progress=lambda line: click.echo(line, err=True)
        )
    except (TuneError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _table(report, out)
    if report["warning"]:
        click.echo(f"warning: {report['warning']}", err=True)
    if not report["written"]:
        raise click.ClickException(f"{report['not_written_because']}; nothing written")


def _pairs(
    pairs_path: Path | None, intents_path: Path | None, group_column: str | None, column: str, neighbours: int,
    balance: bool, embed: Any,
) -> list[cal.Pair]:  # fmt: skip
    import csv

    if pairs_path is not None:
        try:
            pairs = cal.load_pairs(pairs_path, group_column=group_column)
        except (KeyError, ValueError, UnicodeDecodeError, csv.Error) as exc:
            raise click.ClickException(f"{pairs_path}: not a pairs file ({exc})") from None
    else:
        assert intents_path is not None
        from tokenomy.cache.semantic.tuning.intents import intent_pairs, read_questions

        try:
            labelled = read_questions(intents_path, column)
        except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
            raise click.ClickException(str(exc)) from None
        texts = list(labelled)
        if len(texts) <= neighbours:
            raise click.ClickException(f"{intents_path}: {len(texts)} distinct questions, need more than {neighbours}")
        vectors = embed(texts)
        pairs = [cal.Pair(a, b, y) for a, b, y in intent_pairs(labelled, vectors, neighbours, balance)]
    if not pairs:
        raise click.ClickException(f"{pairs_path or intents_path}: no labelled pairs")
    conflicts = cal.conflict_warning(cal.label_conflicts(pairs))
    if conflicts:
        click.echo(f"warning: {conflicts}", err=True)
    return pairs


def _table(report: dict[str, Any], out: Path) -> None:
    click.echo(f"{report['pairs']} pairs ({report['positives']} same), {report['folds']} folds; "
               f"AUC {report['auc']['start']} -> {report['auc']['tuned, out of fold']} (out of fold)")  # fmt: skip
    from tokenomy.cache.semantic.tuning.report import TABLE_HEADER, table_row

    click.echo(TABLE_HEADER)
    for name, row in report["models"].items():
        click.echo(table_row(name, row))
    click.echo(table_row(f"{report['verifier']} verifier, rule aiming at {report['rule_target']} (nested)",
                         report["validated"]))  # fmt: skip
    for target, row in report["other_targets"].items():  # nested too: what a lower target would give
        click.echo(table_row(f"{report['verifier']} verifier, rule aiming at {target} (nested)", row))
    _group_table(report["validated"])
    if report["written"]:
        folds = ", ".join("-" if t is None else str(t) for t in report["validated"]["thresholds"])
        click.echo(f"\nthreshold {report['threshold']} (the rule aiming at {report['rule_target']}; the median of "
                   f"the folds' {folds}). "
                   "Serve it with:\n\ncache:\n  semantic:\n"
                   f"    enabled: true\n    model_path: {(out / 'cross-encoder.w8.onnx').resolve()}\n"
                   f"    verifier_path: {(out / 'verifier.json').resolve()}")  # fmt: skip


def _group_table(validated: dict[str, Any]) -> None:
    """The nested estimate at the rule's aim, group by group, and its interval over whole groups."""
    if not validated["by_group"]:
        return
    click.echo("\n| group | accepted | false | precision | same | recall |\n|---|---|---|---|---|---|")
    for group, accepted, false, same in validated["by_group"]:
        precision = f"{(accepted - false) / accepted:.3f}" if accepted else "-"
        recall = f"{(accepted - false) / same:.3f}" if same else "-"
        click.echo(f"| {group} | {accepted} | {false} | {precision} | {same} | {recall} |")
    if validated["precision_95_groups"] is not None:
        low, high = validated["precision_95_groups"]
        click.echo(f"\nprecision {validated['precision']}, 95 % interval resampling whole groups [{low}, {high}]")
