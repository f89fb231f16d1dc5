"""``tokenomy plan``: should this traffic stay on the API or move to our own GPUs, and which."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from tokenomy.cli_options import config_option
from tokenomy.planning import catalog, plan, profiles, traffic
from tokenomy.planning.slo import SloError, parse_slo
from tokenomy.reports.timeparse import HELP as WHEN_HELP
from tokenomy.reports.timeparse import WhenType

PUBLISHED_HINT = "src/tokenomy/planning/data/published_throughput.csv (or pass --published FILE)"


def _csv(text: str) -> list[str]:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


def _growth(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*x?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise click.UsageError(f"--growth {text!r}: expected a factor such as 2x or 1.5")
    return float(match.group(1))


def _traffic(
    config_path: Path | None,
    since: float,
    until: float,
    tasks: list[str],
    stated: tuple[float | None, ...],
    peak_to_mean: float,
) -> traffic.Traffic:
    rpd, inp, out = stated
    try:
        if any(v is not None for v in stated):
            if rpd is None or inp is None or out is None:
                raise click.UsageError(
                    "a stated profile needs all of --requests-per-day, --input-tokens, --output-tokens"
                )
            return traffic.stated(rpd, inp, out, peak_to_mean)
        from tokenomy.config import ConfigError, load_config
        from tokenomy.ledger.stores import StoreUnavailable, store_for

        try:
            store = store_for(load_config(config_path).ledger)
            return traffic.from_ledger(store, since, until, tasks)
        except ConfigError as exc:
            raise click.ClickException(f"{exc.source}: " + "; ".join(str(i) for i in exc.issues)) from None
        except (traffic.TrafficError, click.ClickException):
            raise
        except (StoreUnavailable, Exception) as exc:  # sqlite3/psycopg errors, as one line
            raise click.ClickException(f"cannot read the ledger: {' '.join(str(exc).split())}") from None
    except traffic.TrafficError as exc:
        raise click.ClickException(str(exc)) from None


class Planner:
    """Builds the options for any traffic volume from the fixed inputs (prices, catalog, capacities)."""

    def __init__(
        self,
        api_prices: dict[str, Any],
        gpu_rows: list[catalog.GpuRow],
        capacities: dict[str, plan.Capacity],
        assumptions: plan.Assumptions,
    ) -> None:
        self.api_prices = api_prices
        self.gpu_rows = gpu_rows
        self.capacities = capacities
        self.assumptions = assumptions

    def options(self, t: traffic.Traffic) -> list[plan.Option]:
        """Every option priced for ``t``."""
        a = self.assumptions
        out = [plan.api_option(m, t, p, a) for m, p in self.api_prices.items()]
        for row in self.gpu_rows:
            cap = self.capacities.get(row.gpu)
            if cap is None:
                continue
            out.append(plan.self_hosted_option(t, row, cap, a))
            if row.spot_usd_per_hour is not None:
                out.append(plan.self_hosted_option(t, row, cap, a, spot=True))
        return out


def _capacities(
    model: str,
    gpus: list[catalog.GpuRow],
    docs: list[dict[str, Any]],
    published: list[catalog.PublishedRow],
    slo: dict[str, float],
    problems: list[str],
) -> dict[str, plan.Capacity]:
    out = {}
    for row in gpus:
        measured = [d for d in docs if str(d.get("model", "")).lower() == model and str(d.get("gpu") or "") == row.gpu]
        if measured and all(profiles.capacity(d, slo) is None for d in measured):
            problems.append(
                f"{model} on {row.gpu}: the measured profile never met the SLO at any load; relax --slo or "
                "benchmark a faster GPU"
            )
            continue
        cap = plan.find_capacity(model, row.gpu, docs, published, slo)
        if cap is None:
            problems.append(
                f"no throughput profile for {model} on {row.gpu}: run tokenomy bench --base-url URL --model {model} "
                f"--gpu {row.gpu} --out DIR and pass --profiles DIR, or add a row to {PUBLISHED_HINT}"
            )
            continue
        if slo and cap.kind == "published" and cap.ttft_p90_ms is None:
            problems.append(f"{model} on {row.gpu}: the published figure states no latency, so the SLO is not checked")
        out[row.gpu] = cap
    return out


@click.command("plan")
@config_option("Config whose ledger holds the traffic.")
@click.option("--since", type=WhenType(), default="30d", show_default=True, help=f"Window start: {WHEN_HELP}.")
@click.option("--until", type=WhenType(end_of_day=True), default=None, help="Window end (default: now).")
@click.option("--task", "tasks", multiple=True, help="Only these tasks (repeatable).")
@click.option("--requests-per-day", type=float, default=None, help="Stated traffic instead of the ledger.")
@click.option("--input-tokens", type=float, default=None, help="Stated: mean input tokens per request.")
@click.option("--output-tokens", type=float, default=None, help="Stated: mean output tokens per request.")
@click.option("--peak-to-mean", type=float, default=2.0, show_default=True, help="Stated: busiest hour over mean.")
@click.option("--growth", default="1x", show_default=True, help="Scale the traffic, e.g. 2x.")
@click.option("--models", default="gpt-4o-mini", show_default=True, help="API models to price (comma-separated).")
@click.option(
    "--self-host-model",
    default="llama-3.1-8b",
    show_default=True,
    help="The open model to self-host (as named in profiles and the published table).",
)
@click.option("--gpus", default="l4,a10g,l40s,a100,h100", show_default=True, help="GPU types from the catalog.")
@click.option(
    "--profiles",
    "profiles_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Directory of tokenomy bench profiles (searched recursively).",
)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="An edited GPU catalog CSV (default: the shipped one).",
)
@click.option(
    "--published",
    "published_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="An edited published-throughput CSV (default: the shipped one).",
)
@click.option("--slo", default=None, help="Latency bounds: ttft_ms=500,tpot_ms=50.")
@click.option(
    "--headroom",
    type=click.FloatRange(0, 0.95),
    default=0.2,
    show_default=True,
    help="Share of each GPU's capacity kept free at peak.",
)
@click.option("--redundancy", type=click.IntRange(0, 10), default=1, show_default=True, help="Spare replicas (N+k).")
@click.option(
    "--batch-share",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of traffic that is not interactive and can use the batch API.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to FILE.")
def plan_command(
    config_path: Path | None,
    since: float,
    until: float | None,
    tasks: tuple[str, ...],
    requests_per_day: float | None,
    input_tokens: float | None,
    output_tokens: float | None,
    peak_to_mean: float,
    growth: str,
    models: str,
    self_host_model: str,
    gpus: str,
    profiles_dir: Path | None,
    catalog_path: Path | None,
    published_path: Path | None,
    slo: str | None,
    headroom: float,
    redundancy: int,
    batch_share: float,
    fmt: str,
    out: Path | None,
) -> None:
    """API or self-hosting: monthly cost of each option for your traffic, the decision and the break-even."""
    try:
        bounds = parse_slo(slo)
    except SloError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "html" and out is None and sys.stdout.isatty():
        raise click.UsageError("--format html writes a file: give --out FILE (or redirect stdout)")
    factor = _growth(growth)
    until = until if until is not None else time.time()
    if since >= until:
        raise click.UsageError("--since must be earlier than --until")
    t = _traffic(
        config_path, since, until, list(tasks), (requests_per_day, input_tokens, output_tokens), peak_to_mean
    ).scaled(factor)
    if factor != 1:
        t = traffic.Traffic(
            t.requests,
            t.input_tokens,
            t.cached_tokens,
            t.output_tokens,
            t.peak_to_mean,
            f"{t.source}, grown {factor:g}x",
            t.window_days,
        )
    a = plan.Assumptions(headroom=headroom, redundancy=redundancy, batch_share=batch_share, slo=bounds)
    planner, problems = _planner(models, self_host_model, gpus, profiles_dir, catalog_path, published_path, a)
    try:
        decision = plan.decide(t, planner.options, a, problems)
    except plan.PlanError as exc:
        raise click.ClickException(str(exc)) from None
    from tokenomy.planning import plan_render

    if fmt == "json":
        text = plan_render.to_json(decision)
    elif fmt == "html":
        text = plan_render.to_html(decision, planner.options)
    else:
        text = plan_render.to_table(decision)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {out}: {decision.best.name}", err=True)


def _planner(
    models: str,
    self_host_model: str,
    gpus: str,
    profiles_dir: Path | None,
    catalog_path: Path | None,
    published_path: Path | None,
    a: plan.Assumptions,
) -> tuple[Planner, list[str]]:
    from tokenomy.pricing.prices import lookup

    problems: list[str] = []
    prices = {}
    for model in _csv(models):
        price = lookup(model, "openai")
        if price is None:
            raise click.ClickException(
                f"no price known for API model {model!r} in genai-prices: check the name (e.g. gpt-4o-mini, "
                "claude-3-5-haiku) or drop it from --models"
            )
        prices[model] = price
    try:
        rows = catalog.gpus(catalog_path)
        published = catalog.published(published_path)
    except catalog.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    where = str(catalog_path) if catalog_path else "src/tokenomy/planning/data/gpus.csv (or pass --catalog FILE)"
    chosen = []
    for name in _csv(gpus):
        row = rows.get(name)
        if row is None:
            raise click.ClickException(f"unknown GPU {name!r}: the catalog has {', '.join(rows)}; add a row to {where}")
        if row.on_demand_usd_per_hour is None:
            raise click.ClickException(
                f"GPU {name!r} has no on-demand price: fill on_demand_usd_per_hour in {where}, or drop it from --gpus"
            )
        chosen.append(row)
    docs = []
    if profiles_dir is not None:
        for sub in sorted({p.parent for p in profiles_dir.rglob("*.json")}):
            docs.extend(profiles.load_dir(sub))
    caps = _capacities(self_host_model.lower(), chosen, docs, published, a.slo, problems)
    if not caps and a.slo and not prices:
        raise click.ClickException("no option can meet the SLO: " + "; ".join(problems))
    return Planner(prices, chosen, caps, a), problems


build_planner = _planner
"""The planner ``tokenomy plan`` builds from its options (the advisor prices self-hosting with it)."""
