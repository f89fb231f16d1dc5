"""``tokenomy eval``: load the items, run them through a gateway on each model, score, summarize, write."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tokenomy.config.models import GatewayConfig
from tokenomy.evaluate.client import GatewayClient, Pricer
from tokenomy.evaluate.dataset import Dataset, EvalItem
from tokenomy.evaluate.outcomes_writer import write_outcomes
from tokenomy.evaluate.pareto import pareto_front
from tokenomy.evaluate.policy_writer import build_policy, write_policy
from tokenomy.evaluate.render import document, html_report, pareto_png, print_tables
from tokenomy.evaluate.results import CallResult, RunDir
from tokenomy.evaluate.runner import Progress as Tick
from tokenomy.evaluate.runner import Runner, RunState, Unit, plan
from tokenomy.evaluate.scorers.base import make_scorer
from tokenomy.evaluate.summary import summarize


class EvalError(ValueError):
    """A run that cannot start: unknown models, a bad scorer, an unusable output directory."""


@dataclass(slots=True)
class EvalOptions:
    """Everything ``tokenomy eval`` takes besides the dataset."""

    models: list[str]
    scorer: str = "exact"
    out: Path = Path("eval-results")
    config: GatewayConfig | None = None
    gateway_url: str | None = None
    api_key: str | None = None
    concurrency: int = 16
    limit: int | None = None
    repeats: int = 1
    budget_usd: float | None = None
    resume: bool = False
    write_policy: Path | None = None
    min_quality: float = 0.9
    progress: bool = False
    max_retries: int = 6
    backoff_s: float = 1.0
    ray: str | None = None  # "auto" or a Ray cluster address: shard the items over Ray
    params: dict[str, Any] = field(default_factory=dict)  # recorded in run.json (resume checks them)


@asynccontextmanager
async def _gateway(options: EvalOptions) -> AsyncIterator[str]:
    if options.gateway_url is not None:
        yield options.gateway_url
        return
    from tokenomy.config import load_config
    from tokenomy.evaluate.local_gateway import serve_in_process

    config = options.config if options.config is not None else load_config(None)
    async with serve_in_process(config) as url:
        yield url


@dataclass(slots=True)
class Execution:
    """What a run did: its state, the deployments without a price, and the transient failures retried."""

    state: RunState
    unpriced: list[str]
    retries: int
    started: float


async def execute(items: Sequence[EvalItem], source: str, options: EvalOptions, console: Console | None) -> Execution:
    """Call every item on every model through the gateway and score it; results go to ``options.out``."""
    make_scorer(options.scorer)  # an unknown scorer fails before anything else
    rundir = RunDir(options.out)
    params = {
        "dataset": source,
        "models": options.models,
        "scorer": options.scorer,
        "repeats": options.repeats,
        "limit": options.limit,
        **options.params,
    }
    try:
        done = rundir.prepare(params, options.resume)
    except ValueError as exc:
        raise EvalError(str(exc)) from None
    started = time.time()
    units = plan(items, options.models, options.repeats)
    with _progress_bar(console if options.progress else None, len(units)) as tick:
        if options.ray is not None:
            from tokenomy.evaluate.ray_runner import run_on_ray

            state, unpriced, retries = await asyncio.to_thread(run_on_ray, options, units, done, rundir, tick)
        else:
            state, unpriced, retries = await run_units(options, units, done, rundir, tick)
    return Execution(state, unpriced, retries, started)


async def run_units(
    options: EvalOptions,
    units: Sequence[Unit],
    done: dict[tuple[str, str, int], CallResult],
    sink: RunDir,
    tick: Tick | None,
) -> tuple[RunState, list[str], int]:
    """Serve or reach the gateway, check the model names, and run ``units`` (a whole run, or one shard)."""
    scorer = make_scorer(options.scorer)
    async with _gateway(options) as url:
        client = GatewayClient(
            url,
            Pricer(options.config),
            api_key=options.api_key,
            max_retries=options.max_retries,
            backoff_s=options.backoff_s,
            connections=max(16, options.concurrency),
        )
        try:
            known = await client.models()
            unknown = [m for m in options.models if m not in known]
            judge = getattr(scorer, "model", None)
            if isinstance(judge, str) and judge not in known:
                unknown.append(judge)
            if unknown:
                raise EvalError(f"unknown model(s) {', '.join(unknown)}; the gateway serves: {', '.join(known)}")
            runner = Runner(
                client,
                scorer,
                sink,
                concurrency=options.concurrency,
                budget_usd=options.budget_usd,
                models=known,
                progress=tick,
            )
            state = await runner.run(units, done)
        finally:
            await client.aclose()
    return state, sorted(client.pricer.unpriced), client.retries


async def run_evaluation(dataset: Dataset, options: EvalOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the evaluation and write its files; returns the JSON document (results, pareto, policy)."""
    items = dataset.items[: options.limit] if options.limit else dataset.items
    run = await execute(items, dataset.source, options, console)
    return finish(dataset, items, options, run.state, run.started, run.unpriced, run.retries)


def finish(
    dataset: Dataset,
    items: Sequence[Any],
    options: EvalOptions,
    state: RunState,
    started: float,
    unpriced: list[str],
    retries: int,
) -> dict[str, Any]:
    """Summarize, write the outcomes, plot, report and (when asked) the policy; the JSON document."""
    results = list(state.results.values())
    rows = summarize(sorted(results, key=lambda r: (options.models.index(r.model), r.task)))
    front = pareto_front(rows)
    chosen: dict[str, str] | None = None
    meta: dict[str, Any] = {
        "items": len(items),
        "skipped_lines": dataset.skipped,
        "calls_made": state.made,
        "spent_usd": round(state.spent_usd, 6),
        "retries": retries,
        "stopped": state.stopped,
        "seconds": round(time.time() - started, 3),
        "out": str(options.out),
    }
    if unpriced:
        meta["unpriced"] = unpriced
    if options.write_policy is not None:
        written = build_policy(rows, options.min_quality)
        chosen = written.chosen
        if written.unmet:
            meta["policy_unmet"] = {t: round(q, 4) for t, q in written.unmet.items()}
        if written.chosen:
            write_policy(options.write_policy, written, rows, dataset.source)
            meta["policy_file"] = str(options.write_policy)
    meta["outcomes_rows"] = write_outcomes(options.out / "outcomes.csv", items, options.models, results)
    doc = document(rows, front, chosen, meta)
    png = pareto_png(rows, front)
    (options.out / "pareto.png").write_bytes(png)
    (options.out / "report.html").write_text(html_report(doc, png, f"Evaluation of {dataset.source}"), "utf-8")
    (options.out / "summary.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


class _progress_bar:
    """Items done, running cost and ETA on stderr (only when it is a terminal)."""

    def __init__(self, console: Console | None, total: int) -> None:
        self._bar: Progress | None = None
        if console is not None and console.is_terminal:
            self._bar = Progress(
                TextColumn("eval"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("${task.fields[spent]:.4f}"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._task = self._bar.add_task("eval", total=total, spent=0.0)

    def __enter__(self) -> Any:
        if self._bar is None:
            return None
        self._bar.start()

        def tick(done: int, total: int, spent: float) -> None:
            assert self._bar is not None
            self._bar.update(self._task, completed=done, spent=spent)

        return tick

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def render(doc: dict[str, Any], fmt: str, console: Console) -> None:
    """Print the document as tables or JSON."""
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from tokenomy.evaluate.summary import ModelTaskResult

    rows = [ModelTaskResult(**r) for r in doc["results"]]
    notes = [
        f"{doc['calls_made']} calls made, ${doc['spent_usd']:.4f} spent in all (judging included); "
        f"files in {doc['out']}"
    ]
    if doc.get("stopped") == "budget":
        notes.append("stopped early: the next calls would have gone over --budget-usd (--resume continues)")
    if doc.get("skipped_lines"):
        notes.append(f"{doc['skipped_lines']} malformed dataset lines skipped")
    if doc.get("unpriced"):
        notes.append(f"no price known for {', '.join(doc['unpriced'])}: their calls count as $0")
    for task, best in (doc.get("policy_unmet") or {}).items():
        notes.append(f"task {task}: no model's lower bound reaches --min-quality (best {best}); left out of the policy")
    if doc.get("policy_file"):
        notes.append(f"policy written to {doc['policy_file']}")
    print_tables(console, rows, doc["pareto"], doc.get("policy"), notes)


def run_sync(dataset: Dataset, options: EvalOptions, console: Console) -> dict[str, Any]:
    """Run from a command line: Ctrl-C keeps what is done (the results file) and says how to resume."""
    try:
        return asyncio.run(run_evaluation(dataset, options, console))
    except KeyboardInterrupt:
        console.print(f"interrupted; finished calls are in {options.out} (run again with --resume to continue)")
        raise SystemExit(130) from None
