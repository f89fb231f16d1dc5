"""``tokenomy router train`` and ``tokenomy router evaluate``: the learned router's offline commands.

Register with ``main.add_command(router)``. Tests (or other callers) may pass
``obj={"embed": fn}`` to supply the embedding function instead of the embedded MiniLM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tokenomy.routing.learned.evaluate import Evaluation, Point
    from tokenomy.routing.learned.features import Embed
    from tokenomy.routing.learned.outcomes import CostSpec, Outcomes
    from tokenomy.routing.learned.router import LearnedRouter

RULES = ("margin", "absolute")
FAMILIES = ("logistic", "knn", "mf", "winprob")
_FILE = click.Path(dir_okay=False, path_type=Path)


def _cost_options(fn: Any) -> Any:
    fn = click.option(
        "--output-tokens",
        type=click.IntRange(0),
        default=1,
        show_default=True,
        help="Answer tokens assumed per query for --price.",
    )(fn)
    fn = click.option(
        "--price",
        "prices",
        multiple=True,
        metavar="MODEL=IN:OUT",
        help="For a file without costs: USD per 1M input:output tokens (repeatable).",
    )(fn)
    fn = click.option(
        "--cost",
        "costs",
        multiple=True,
        metavar="MODEL=USD",
        help="For a file without costs: USD per query of MODEL (repeatable).",
    )(fn)
    fn = click.option(
        "--embedding-cache", type=_FILE, default=None, help="Keep prompt embeddings in this .npz between runs."
    )(fn)
    fn = click.option(
        "--outcomes",
        "outcomes_path",
        type=_FILE,
        required=True,
        help="Outcomes file (CSV or JSONL, optionally gzipped; see docs/routing.md).",
    )(fn)
    return fn


def _pair(value: str, option: str) -> tuple[str, str]:
    model, sep, rest = value.rpartition("=")
    if not sep or not model or not rest:
        raise click.BadParameter(f"{value!r} is not MODEL=VALUE", param_hint=option)
    return model, rest


def _number(text: str, option: str, value: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: {text!r} is not a number", param_hint=option) from None
    if not number >= 0:
        raise click.BadParameter(f"{value!r}: a price cannot be negative", param_hint=option)
    return number


def _cost_spec(costs: tuple[str, ...], prices: tuple[str, ...], output_tokens: int) -> CostSpec:
    from tokenomy.routing.learned.outcomes import CostSpec

    per_query: dict[str, float] = {}
    for item in costs:
        model, text = _pair(item, "--cost")
        per_query[model] = _number(text, "--cost", item)
    per_token: dict[str, tuple[float, float]] = {}
    for item in prices:
        model, text = _pair(item, "--price")
        parts = text.split(":")
        if len(parts) > 2:
            raise click.BadParameter(f"{item!r} is not MODEL=IN:OUT", param_hint="--price")
        values = [_number(p, "--price", item) for p in parts]
        per_token[model] = (values[0], values[-1])
    return CostSpec(per_query, per_token, output_tokens)


def _load(path: Path, spec: CostSpec) -> Outcomes:
    from tokenomy.routing.learned.outcomes import OutcomesError, load_outcomes

    try:
        outcomes = load_outcomes(path, spec)
    except OutcomesError as exc:
        raise click.ClickException(str(exc)) from None
    if outcomes.skipped:
        click.echo(f"note: skipped {outcomes.skipped} rows with an empty or NaN outcome or cost", err=True)
    return outcomes


def _embedder(cache: Path | None) -> Embed:
    from tokenomy.routing.learned.features import cached_embed, minilm_embed

    obj = click.get_current_context().obj
    embed: Embed = obj["embed"] if isinstance(obj, dict) and "embed" in obj else minilm_embed()
    return cached_embed(embed, cache) if cache else embed


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group("router")
def router() -> None:
    """Train and evaluate the learned router (cheapest model predicted to get the prompt right)."""


@router.command("train")
@_cost_options
@click.option("--out", "out_path", type=_FILE, default=Path("router.npz"), show_default=True, help="Router file.")
@click.option(
    "--split",
    default="train",
    show_default=True,
    help="Train on the rows of this split ('all': every row). Rows without one: 80/20 by prompt hash.",
)
@click.option("--rule", type=click.Choice(RULES), default="margin", show_default=True, help="Decision rule.")
@click.option(
    "--family",
    type=click.Choice(["auto", *FAMILIES]),
    default="auto",
    show_default=True,
    help="Router family; auto: the largest out-of-fold cost-quality area.",
)
@click.option(
    "--target-quality",
    "--target",
    "target",
    type=click.FloatRange(0, 1),
    default=0.97,
    show_default=True,
    help="Default operating point: the cheapest reaching this share of the best model's accuracy (CV, with margin).",
)
@click.option(
    "--max-cost-share",
    type=click.FloatRange(0, 1),
    default=None,
    help="Instead: the most accurate operating point within this share of the best model's cost (CV, with margin).",
)
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True, help="Cross-validation folds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold assignment.")
def train_command(
    outcomes_path: Path,
    embedding_cache: Path | None,
    costs: tuple[str, ...],
    prices: tuple[str, ...],
    output_tokens: int,
    out_path: Path,
    split: str,
    rule: str,
    family: str,
    target: float,
    max_cost_share: float | None,
    folds: int,
    seed: int,
) -> None:
    """Learn each model's chance of success from per-prompt outcomes; write the router file."""
    from tokenomy.routing.learned.artifact import save_router
    from tokenomy.routing.learned.outcomes import OutcomesError
    from tokenomy.routing.learned.train import TrainOptions, train_router

    outcomes = _load(outcomes_path, _cost_spec(costs, prices, output_tokens))
    options = TrainOptions(
        split=None if split == "all" else split,
        rule="absolute" if rule == "absolute" else "margin",
        family=family,
        target_quality=target,
        max_cost_share=max_cost_share,
        folds=folds,
        seed=seed,
    )
    try:
        learned = train_router(outcomes, _embedder(embedding_cache), options, source=str(outcomes_path), warn=_warn)
        save_router(learned, out_path)
    except (OutcomesError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    _print_trained(learned, out_path)


@router.command("evaluate")
@_cost_options
@click.option("--router", "router_path", type=_FILE, required=True, help="Router file from `router train`.")
@click.option("--split", default=None, help="Evaluate only the rows of this split (default: every row).")
@click.option("--plot", "plot_path", type=_FILE, default=None, help="Write the cost-quality plot (PNG) here.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def evaluate_command(
    outcomes_path: Path,
    embedding_cache: Path | None,
    costs: tuple[str, ...],
    prices: tuple[str, ...],
    output_tokens: int,
    router_path: Path,
    split: str | None,
    plot_path: Path | None,
    fmt: str,
) -> None:
    """Print the router's cost-quality curve against single models, random mixes and the oracle."""
    from tokenomy.routing.learned.artifact import RouterFileError, load_router
    from tokenomy.routing.learned.evaluate import evaluate, router_embeddings
    from tokenomy.routing.learned.outcomes import OutcomesError

    try:
        learned = load_router(router_path)
    except RouterFileError as exc:
        raise click.ClickException(str(exc)) from None
    outcomes = _load(outcomes_path, _cost_spec(costs, prices, output_tokens))
    try:
        rows = outcomes if split is None else outcomes.split(split)
        embeddings = router_embeddings(learned, _embedder(embedding_cache), rows.prompts)
        result = evaluate(learned, rows, embeddings)
    except OutcomesError as exc:
        raise click.ClickException(str(exc)) from None
    if result.seen_in_training:
        _warn(
            f"{result.seen_in_training} of the {result.rows} evaluated prompts were among the router's training "
            "prompts: these figures are not held-out (evaluate another split, e.g. --split test)"
        )
    if plot_path is not None:
        from tokenomy.routing.learned.plot import plot_evaluation

        title = f"Learned router on {outcomes_path.name}" + (f" ({split})" if split else "")
        plot_evaluation(result, plot_path, title=title)
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        _print_evaluation(result)
        if plot_path is not None:
            click.echo(f"plot: {plot_path}")


def _print_trained(learned: LearnedRouter, out_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    meta = learned.meta
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 132)
    table = Table(title=f"router trained on {meta.get('rows')} rows (split {meta.get('split') or 'all'})")
    for column in ("model", "train accuracy", "mean cost/query (USD)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in learned.models:
        table.add_row(model, f"{meta['train_accuracy'][model]:.3f}", f"{meta['mean_cost_usd'][model]:.6f}")
    console.print(table)
    families = Table(title="router families (out-of-fold, cross-validation on the training rows)")
    for column in ("family", "cost-quality area", "hyperparameters chosen by CV (out-of-fold area)", "seconds"):
        families.add_column(column, justify="right" if column in ("cost-quality area", "seconds") else "left")
    for name, info in meta.get("families", {}).items():
        mark = " *" if name == learned.family else ""
        families.add_row(name + mark, f"{info['area']:.4f}", str(info["chosen"]), f"{info['seconds']:.1f}")
    console.print(families)
    console.print(
        f"* {learned.family}: {meta.get('family_reason')}; "
        f"{meta.get('preambles', 0)} shared preamble(s) found and stripped before embedding",
        soft_wrap=True,
    )
    console.print(
        f"knob: {len(learned.knob.vertices)} operating points on the out-of-fold hull; default position "
        f"{learned.knob.default:.3f} ({meta.get('default_reason')})",
        soft_wrap=True,
    )
    console.print(f"wrote {out_path}")


def _shown(result: Evaluation) -> list[Point]:
    """Curve points worth a table row: where cost or accuracy moved, plus the ends and the default."""
    shown: list[Point] = []
    for point in result.curve:
        last = shown[-1] if shown else None
        if (
            last is None
            or point is result.curve[-1]
            or point.knob == result.default_knob
            or abs(point.cost_usd - last.cost_usd) > 0.1 * max(last.cost_usd, 1e-12)
            or abs(point.accuracy - last.accuracy) > 0.005
        ):
            shown.append(point)
    return shown


def _print_evaluation(result: Evaluation) -> None:
    from rich.console import Console
    from rich.table import Table

    from tokenomy.routing.learned.evaluate import mix_accuracy, mix_frontier

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 132)
    best_name, best = max(result.baselines.items(), key=lambda kv: (kv[1].accuracy, -kv[1].cost_usd))
    models = Table(title=f"single models and the oracle on {result.rows} prompts")
    for column in ("model", "accuracy", "cost (USD)", "% of best acc.", "% of best cost"):
        models.add_column(column, justify="left" if column == "model" else "right")
    rows = sorted(result.baselines.items(), key=lambda kv: kv[1].cost_usd)
    for name, point in [*rows, ("oracle", result.oracle)]:
        models.add_row(name, *_cells(point, best))
    console.print(models)
    frontier = mix_frontier(result.baselines)
    curve = Table(title=f"router curve (vs the best model, {best_name})")
    for column in ("knob", "accuracy", "cost (USD)", "% of best acc.", "% of best cost", "random mix acc."):
        curve.add_column(column, justify="right")
    for point in _shown(result):
        mark = " *" if point.knob == result.default_knob else ""
        curve.add_row(f"{point.knob:.2f}{mark}", *_cells(point, best), f"{mix_accuracy(frontier, point.cost_usd):.3f}")
    console.print(curve)
    console.print("* the router's default knob position; random mix acc.: the best mix of two models at the same cost")
    tasks = Table(title=f"per task, at the default knob position (vs {best_name})")
    for column in ("task", "rows", "accuracy", "best model acc.", "% of best cost", "models chosen (share)"):
        tasks.add_column(column, justify="left" if column in ("task", "models chosen (share)") else "right")
    for task in result.tasks:
        picks = ", ".join(
            f"{m.split('/')[-1]} {s:.0%}" for m, s in sorted(task.picks.items(), key=lambda kv: -kv[1])[:3]
        )
        tasks.add_row(
            task.task, str(task.rows), f"{task.accuracy:.3f}", f"{task.best_accuracy:.3f}", f"{task.cost_share:.1%}",
            picks,
        )  # fmt: skip
    console.print(tasks)


def _cells(point: Point, best: Point) -> tuple[str, str, str, str]:
    return (
        f"{point.accuracy:.3f}",
        f"{point.cost_usd:.4f}",
        f"{100 * point.accuracy / best.accuracy:.1f}%" if best.accuracy else "-",
        f"{100 * point.cost_usd / best.cost_usd:.1f}%" if best.cost_usd else "-",
    )
