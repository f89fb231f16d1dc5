"""``tokenomy bench``: load-test an OpenAI-compatible endpoint and save a throughput profile."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from tokenomy.cli_options import config_option
from tokenomy.planning import profiles, workload
from tokenomy.planning.slo import SloError, parse_slo

if TYPE_CHECKING:
    from tokenomy.planning import loadgen
    from tokenomy.planning.metrics import Summary
from tokenomy.reports.timeparse import HELP as WHEN_HELP
from tokenomy.reports.timeparse import WhenType


def _levels(text: str, name: str, *, allow_inf: bool) -> list[float]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        try:
            value = math.inf if allow_inf and part == "inf" else float(part)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise click.UsageError(f"--{name} {text!r}: expected positive numbers separated by commas")
        out.append(value)
    return out


def _workload(
    dataset: Path | None,
    from_ledger: bool,
    synthetic: str | None,
    task: str | None,
    since: float | None,
    config_path: Path | None,
    count: int,
) -> tuple[list[workload.BenchRequest], str]:
    chosen = sum(x for x in (dataset is not None, from_ledger, synthetic is not None))
    if chosen > 1:
        raise click.UsageError("choose one of --dataset, --from-ledger and --synthetic")
    try:
        if dataset is not None:
            return workload.from_jsonl(dataset, count), f"dataset {dataset.name}"
        if from_ledger:
            return _ledger_workload(task, since, config_path, count)
        spec = synthetic or "in=512,out=128"
        return workload.synthetic(spec, count), f"synthetic {spec}"
    except workload.WorkloadError as exc:
        raise click.ClickException(str(exc)) from None


def _ledger_workload(
    task: str | None, since: float | None, config_path: Path | None, count: int
) -> tuple[list[workload.BenchRequest], str]:
    from tokenomy.config import ConfigError, load_config
    from tokenomy.ledger.stores import StoreUnavailable, store_for

    try:
        store = store_for(load_config(config_path).ledger)
        lengths = workload.ledger_lengths(store, since, task)
    except ConfigError as exc:
        raise click.ClickException(f"{exc.source}: " + "; ".join(str(i) for i in exc.issues)) from None
    except (StoreUnavailable, Exception) as exc:  # sqlite3/psycopg errors: one line for the user
        if isinstance(exc, click.ClickException):
            raise
        raise click.ClickException(f"cannot read the ledger: {' '.join(str(exc).split())}") from None
    what = "the ledger" + (f" (task {task})" if task else "")
    return workload.from_lengths(lengths, count, what=what), f"ledger lengths{f' task={task}' if task else ''}"


async def _preflight(target: loadgen.Target) -> None:
    """One tiny streamed request: unreachable, unknown model or no streaming fail here, clearly."""
    import aiohttp

    from tokenomy.planning import loadgen

    probe = workload.BenchRequest([{"role": "user", "content": "hi"}], None, 2)
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=10)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        result = await loadgen.send_one(session, target, probe)
        if result.error is None:
            return
        if result.error == "connect":
            raise click.ClickException(f"cannot reach {target.base_url}: is the server running? check --base-url")
        if result.error == "not streamed":
            raise click.ClickException(
                f"{target.base_url} answered without streaming (no text/event-stream): bench needs a server that "
                "streams chat completions (stream=true) to time tokens"
            )
        if result.error.startswith(("http 404", "http 400")) and "model" in result.error:
            names = await _served_models(session, target)
            raise click.ClickException(
                f"{target.base_url} does not serve model {target.model!r}"
                + (f"; it serves: {', '.join(names)}" if names else "")
                + " (pass one with --model)"
            )
        if result.error.startswith(("http 401", "http 403")):
            raise click.ClickException(f"{target.base_url} refused the key ({result.error}): set --api-key-env VAR")
        raise click.ClickException(f"a probe request to {target.base_url} failed: {result.error}")


async def _served_models(session: object, target: loadgen.Target) -> list[str]:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    try:
        async with session.get(target.base_url.rstrip("/") + "/models") as resp:
            data = await resp.json()
        return [str(m["id"]) for m in data.get("data", [])]
    except (aiohttp.ClientError, ValueError, KeyError, TypeError, AttributeError):
        return []


async def _sweep(
    target: loadgen.Target,
    requests: list[workload.BenchRequest],
    levels: list[tuple[str, float]],
    duration: float | None,
    slo: dict[str, float],
    err: Console,
    processes: int = 1,
) -> list[Summary]:
    from tokenomy.planning import loadgen_procs
    from tokenomy.planning.metrics import summarize

    summaries = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        for kind, value in levels:
            label = f"rate={value:g}/s" if kind == "rate" else f"concurrency={value:g}"
            task = progress.add_task(label, total=len(requests))

            def tick(_result: loadgen.RequestResult, task: TaskID = task) -> None:
                progress.advance(task)

            run = await loadgen_procs.run(
                target,
                requests,
                processes=processes,
                rate=value if kind == "rate" else None,
                concurrency=int(value) if kind == "concurrency" else None,
                duration_s=duration,
                on_done=tick,
            )
            summaries.append(summarize(label, run, slo))
    return summaries


@click.command()
@click.option("--base-url", required=True, help="The endpoint's OpenAI base URL, e.g. http://localhost:8000/v1.")
@click.option("--model", required=True, help="Model name to request.")
@click.option("--api-key-env", default=None, metavar="VAR", help="Environment variable holding the API key.")
@click.option(
    "--dataset",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help='JSONL: one request per line ("messages" or "prompt", optional "max_tokens").',
)
@click.option("--from-ledger", is_flag=True, help="Lengths drawn from the ledger's successful requests.")
@click.option("--task", default=None, help="With --from-ledger: only this task's requests.")
@click.option("--since", type=WhenType(), default=None, help=f"With --from-ledger: window start ({WHEN_HELP}).")
@config_option("Config whose ledger --from-ledger reads.")
@click.option("--synthetic", default=None, metavar="in=N,out=M", help="Fixed lengths (default in=512,out=128).")
@click.option("--rate", default=None, help="Poisson arrivals per second; a sweep: 5,10,20,inf.")
@click.option("--concurrency", default=None, help="Closed-loop concurrent requests; a sweep: 1,8,32.")
@click.option("--num-requests", type=click.IntRange(1), default=200, show_default=True, help="Requests per level.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop sending after this many seconds per level.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Generator processes sharing the load (when one core is not enough).",
)
@click.option("--slo", default=None, help="Bounds for goodput: ttft_ms=500,tpot_ms=50[,e2e_ms=..].")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for bench.json, profile.json and bench.png.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--engine", default="unknown", help="Engine name for the profile (vllm, sglang, tgi, ...).")
@click.option("--gpu", default=None, help="GPU type the engine runs on, as in the GPU catalog (l4, a100, ...).")
@click.option("--gpus", type=click.IntRange(1), default=1, show_default=True, help="GPUs behind the endpoint.")
@click.option("--hardware", default=None, help="Free text for the profile (default: this machine's description).")
def bench(
    base_url: str,
    model: str,
    api_key_env: str | None,
    dataset: Path | None,
    from_ledger: bool,
    task: str | None,
    since: float | None,
    config_path: Path | None,
    synthetic: str | None,
    rate: str | None,
    concurrency: str | None,
    num_requests: int,
    duration: float | None,
    processes: int,
    slo: str | None,
    out: Path | None,
    fmt: str,
    engine: str,
    gpu: str | None,
    gpus: int,
    hardware: str | None,
) -> None:
    """Load-test an OpenAI-compatible endpoint: TTFT, TPOT, ITL, E2E, throughput and goodput."""
    if rate is not None and concurrency is not None:
        raise click.UsageError("choose one of --rate and --concurrency")
    levels: list[tuple[str, float]]
    if concurrency is not None:
        levels = [("concurrency", v) for v in _levels(concurrency, "concurrency", allow_inf=False)]
    else:
        levels = [("rate", v) for v in _levels(rate or "inf", "rate", allow_inf=True)]
    try:
        bounds = parse_slo(slo)
    except SloError as exc:
        raise click.UsageError(str(exc)) from None
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise click.UsageError(f"--api-key-env {api_key_env}: that environment variable is not set")
    requests, described = _workload(dataset, from_ledger, synthetic, task, since, config_path, num_requests)
    from tokenomy.planning.loadgen import Target

    target = Target(base_url, model, api_key)
    err = Console(stderr=True)
    asyncio.run(_preflight(target))
    summaries = asyncio.run(_sweep(target, requests, levels, duration, bounds, err, processes))
    title = f"tokenomy bench: {model} at {base_url} ({described}, {len(requests)} requests per level)"
    levels_doc = [s.to_dict() for s in summaries]
    doc = {"title": title, "slo": bounds, "levels": levels_doc}
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        from tokenomy.planning.bench_render import table

        click.echo(table(summaries, title), nl=False)
    if out is not None:
        from tokenomy.planning.bench_render import plot

        out.mkdir(parents=True, exist_ok=True)
        profile = profiles.build(
            engine=engine,
            model=model,
            gpu=gpu,
            gpus=gpus,
            hardware=hardware or f"{platform.machine()} {platform.node()}",
            date=dt.datetime.now(dt.UTC).date().isoformat(),
            workload=described,
            base_url=base_url,
            levels=levels_doc,
        )
        (out / "bench.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
        (out / "profile.json").write_text(json.dumps(profile, indent=2), encoding="utf-8")
        (out / "bench.png").write_bytes(plot(summaries, title))
        err.print(
            f"wrote {out}/bench.json, profile.json (for tokenomy plan --profiles {out}) and bench.png", highlight=False
        )
