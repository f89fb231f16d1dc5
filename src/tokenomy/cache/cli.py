"""``tokenomy cache``: maintenance commands of the cache (``calibrate``; ``tune``: :mod:`tokenomy.cache.tune_cli`).

``tokenomy cache calibrate --pairs FILE`` scores labelled question pairs as lookups do and prints
precision and recall at each threshold, and the threshold that meets ``--target-precision``: with
``--verify model`` (the default matcher) a threshold on the verifier's decision value — the
``accept`` setting — else a cosine ``threshold``. It warns when the accepted pairs are too few to
certify the target. ``FILE`` is a CSV with the header ``sentence1,sentence2,label`` (1 = same
question) or an STS-B file (tab-separated; score ≥ ``--positive-min`` is a paraphrase, ≤
``--negative-max`` is not); ``--input auto`` tells them apart by the header.

``--format json`` prints one object::

    {"model": str, "verify": "model"|"entities"|"none", "setting": "accept"|"threshold",
     "pairs": int, "positives": int, "negatives": int,
     "target_precision": float, "recall_slack": float,
     "recommended": POINT | null,
     "false_hit_rate_upper_95": float | null,  # one-sided Clopper-Pearson bound at the recommended point
     "warning": str | null,                      # too few accepted pairs to certify the target
     "thresholds": [POINT, ...]}        # ascending thresholds

    POINT = {"threshold": float, "accepted": int, "tp": int, "fp": int, "fn": int,
             "precision": float | null,  # null when no pair is accepted
             "recall": float}
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import click
import numpy as np
import numpy.typing as npt
import orjson

from tokenomy.cache.semantic import calibrate as cal


def embedder(
    arithmetic: Literal["auto", "float32", "int8"] = "auto",
) -> Callable[[list[str]], npt.NDArray[np.float32]]:
    """The semantic tier's embedder as a function of a list of texts (unit vectors), loaded now
    (``arithmetic``: ``auto`` computes as a gateway without a learned router does on this CPU)."""
    from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic
    from tokenomy.providers.local.embeddings import MiniLMEmbedder

    model = MiniLMEmbedder(arithmetic=embedder_arithmetic(arithmetic, False))
    model.load()

    def embed(texts: list[str]) -> npt.NDArray[np.float32]:
        return np.stack([item.vector for item in model.embed(list(texts))])

    return embed


def _model_check() -> object:
    from tokenomy.cache.semantic.verifier import ModelCheck

    check = ModelCheck(None, None, None)
    if not check.load():
        raise click.ClickException(f"the verifier model could not be loaded: {check.failed}")
    return check


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@click.group("cache")
def cache_group() -> None:
    """Cache maintenance."""


@cache_group.command()
@click.option(
    "--pairs", "pairs_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labelled pairs: CSV with sentence1,sentence2,label, or an STS-B file.",
)  # fmt: skip
@click.option("--target-precision", type=click.FloatRange(0, 1), default=0.99, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--verify", type=click.Choice(["model", "entities", "none"]), default="model", show_default=True,
    help="The matcher to calibrate: model (cross-encoder + verifier), entities (cosine + word check), none.",
)  # fmt: skip
@click.option("--input", "input_fmt", type=click.Choice(["auto", "csv", "stsb"]), default="auto", show_default=True)
@click.option("--positive-min", type=float, default=4.0, show_default=True, help="STS-B: paraphrase from this score.")
@click.option("--negative-max", type=float, default=2.0, show_default=True, help="STS-B: different up to this score.")
@click.option(
    "--recall-slack", type=click.FloatRange(0, 1), default=0.0, show_default=True,
    help="Raise the threshold while recall stays ≥ (1 - slack) x the recommended one's.",
)  # fmt: skip
@click.option("--min-threshold", type=float, default=None, help="Lowest threshold [0.5 cosine, 0 decision].")
@click.option("--max-threshold", type=float, default=None, help="Highest threshold [0.99 cosine, 8 decision].")
@click.option("--step", type=click.FloatRange(0.001, 1), default=None, help="Grid step [0.01 cosine, 0.1 decision].")
def calibrate(
    pairs_path: Path,
    target_precision: float,
    fmt: Literal["table", "json"],
    verify: Literal["model", "entities", "none"],
    input_fmt: cal.InputFormat,
    positive_min: float,
    negative_max: float,
    recall_slack: float,
    min_threshold: float | None,
    max_threshold: float | None,
    step: float | None,
) -> None:
    """Precision/recall of the semantic tier at each threshold, and the threshold meeting the target."""
    try:
        pairs = cal.load_pairs(pairs_path, input_fmt, positive_min, negative_max)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(f"{pairs_path}: not a pairs file ({exc})") from exc
    if not pairs:
        raise click.ClickException(f"{pairs_path}: no labelled pairs")
    model = verify == "model"
    grid = cal.thresholds(
        min_threshold if min_threshold is not None else (0.0 if model else 0.5),
        max_threshold if max_threshold is not None else (8.0 if model else 0.99),
        step if step is not None else (0.1 if model else 0.01),
    )
    scores = cal.decisions(embedder(), pairs, _model_check()) if model else cal.similarities(embedder(), pairs)
    points = cal.curve(pairs, scores, verify == "entities", grid)
    chosen = cal.recommend(points, target_precision, recall_slack)
    warning = cal.small_sample_warning(chosen, target_precision)
    if fmt == "json":
        doc = cal.report(pairs, points, chosen, target_precision, verify, recall_slack)
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    positives = sum(p.label for p in pairs)
    click.echo(f"{len(pairs)} pairs ({positives} same, {len(pairs) - positives} different), verify: {verify}")
    click.echo(f"{'threshold':>9} {'accepted':>8} {'tp':>6} {'fp':>5} {'precision':>9} {'recall':>6}")
    for p in points:
        mark = "  <- recommended" if chosen is not None and p.threshold == chosen.threshold else ""
        click.echo(
            f"{p.threshold:>9.3f} {p.accepted:>8} {p.tp:>6} {p.fp:>5} {_fmt(p.precision):>9} {p.recall:>6.3f}{mark}"
        )
    setting = "accept" if model else "threshold"
    if chosen is None:
        click.echo(f"no threshold reaches precision {target_precision}")
    else:
        click.echo(
            f"recommended {setting}: {chosen.threshold:.3f} "
            f"(precision {_fmt(chosen.precision)} on {chosen.accepted} accepted, recall {chosen.recall:.3f})"
        )
    for note in (warning, cal.conflict_warning(cal.label_conflicts(pairs))):
        if note:
            click.echo(f"warning: {note}", err=True)


def _register() -> None:
    from tokenomy.cache.tune_cli import tune

    cache_group.add_command(tune)


_register()
