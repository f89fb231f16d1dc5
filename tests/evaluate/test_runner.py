"""Runs through a real gateway: resume after a kill, the budget stop, outages, scorer crashes, bad input."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from rich.console import Console
from tests.evaluate.helpers import RecordedFake, gateway_yaml, recorded_gateway, routerbench_items, write_dataset
from tests.support.gateway import running_gateway

from tokenomy.config import parse_config
from tokenomy.evaluate.command import EvalError, EvalOptions, run_evaluation
from tokenomy.evaluate.dataset import DatasetError, load_dataset

QUIET = Console(file=io.StringIO())
ROOT = Path(__file__).parents[2]


def results(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def eval_command(tmp_path: Path, data: Path, base_url: str) -> tuple[list[str], dict[str, str], Path]:
    """``tokenomy eval`` in its own process on gpt-4 with the gateway in process: args, env, run directory."""
    (tmp_path / "gw.yaml").write_text(gateway_yaml(base_url))
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "tokenomy.cli",
        "eval",
        "--dataset",
        str(data),
        "--models",
        "gpt-4",
        "--scorer",
        "choice",
        "--config",
        str(tmp_path / "gw.yaml"),
        "--out",
        str(out),
        "--concurrency",
        "2",
    ]
    return args, {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}"}, out


async def started_with_results(
    args: list[str], env: dict[str, str], out: Path, count: int
) -> asyncio.subprocess.Process:
    """Start the command; return once it has written ``count`` results."""
    # SIGINT back to its default in the child, as in a terminal: a test run started in the background of
    # a non-interactive shell inherits SIGINT ignored, and the child would then finish instead of stopping.
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for _ in range(600):
        if (out / "results.jsonl").exists() and len(results(out)) >= count:
            break
        await asyncio.sleep(0.05)
    return proc


async def test_resume_after_kill_calls_no_finished_item_again(tmp_path: Path) -> None:
    items = routerbench_items()[:60]
    data = write_dataset(items, tmp_path / "d.jsonl")
    async with RecordedFake(items, mode="slow", delay=0.05) as fake:
        await fake.start()
        args, env, out = eval_command(tmp_path, data, fake.base_url)
        proc = await started_with_results(args, env, out, 10)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        before = {r["item"] for r in results(out)}
        assert 10 <= len(before) < len(items)

        fake.mode = "ok"
        fake.requests.clear()
        again = await asyncio.create_subprocess_exec(
            *args,
            "--resume",
            "--format",
            "json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await again.communicate()
        assert again.returncode == 0, stderr.decode()[-2000:]
    asked = {r.body["messages"][-1]["content"] for r in fake.requests}
    prompts = {i["id"]: i["prompt"] for i in items}
    assert not asked & {prompts[i] for i in before}, "a finished item was called again"
    assert len(fake.requests) == len(items) - len(before)
    doc = json.loads(stdout)
    row = doc["results"][0]
    assert row["n"] == len(items) and row["errors"] == 0
    assert doc["calls_made"] == len(items) - len(before)
    labels = [i["labels"]["gpt-4-1106-preview"] for i in items]
    assert row["quality"] == pytest.approx(sum(labels) / len(labels))

    # the same directory without --resume is refused; with other models too
    with pytest.raises(EvalError, match="--resume"):
        await run_evaluation(
            load_dataset(data),
            EvalOptions(models=["gpt-4"], scorer="choice", out=out, gateway_url="http://127.0.0.1:9"),
            QUIET,
        )
    with pytest.raises(EvalError, match="other models"):
        await run_evaluation(
            load_dataset(data),
            EvalOptions(models=["yi-34b"], scorer="choice", out=out, resume=True, gateway_url="http://127.0.0.1:9"),
            QUIET,
        )


async def test_budget_stops_before_spending_more_and_resume_continues(tmp_path: Path) -> None:
    items = routerbench_items()[:40]
    dataset = load_dataset(write_dataset(items, tmp_path / "d.jsonl"))
    async with recorded_gateway(items) as (fake, config, gw):
        opts = EvalOptions(
            models=["mistral-7b", "gpt-4"],
            scorer="choice",
            out=tmp_path / "run",
            config=config,
            gateway_url=gw.url,
            concurrency=8,
            budget_usd=0.03,
        )
        doc = await run_evaluation(dataset, opts, QUIET)
        assert doc["stopped"] == "budget"
        assert 0 < doc["spent_usd"] <= 0.03
        assert doc["calls_made"] < 2 * len(items)
        made = len(fake.requests)
        assert made == doc["calls_made"]
        # interleaved models: both were measured on the same items
        rows = {r["model"]: r for r in doc["results"]}
        assert abs(rows["mistral-7b"]["n"] - rows["gpt-4"]["n"]) <= 8

        more = EvalOptions(
            models=["mistral-7b", "gpt-4"],
            scorer="choice",
            out=tmp_path / "run",
            config=config,
            gateway_url=gw.url,
            concurrency=8,
            budget_usd=10.0,
            resume=True,
        )
        doc2 = await run_evaluation(dataset, more, QUIET)
    assert doc2["stopped"] is None
    assert doc2["calls_made"] == 2 * len(items) - made
    assert all(r["n"] == len(items) for r in doc2["results"])


async def test_outage_pauses_and_retries_and_errors_are_not_wrong_answers(tmp_path: Path) -> None:
    items = routerbench_items()[:6]
    dataset = load_dataset(write_dataset(items, tmp_path / "d.jsonl"))
    async with recorded_gateway(items) as (fake, config, gw):
        fake.queue_modes("error_503", "error_500", "error_503")
        opts = EvalOptions(
            models=["gpt-4"],
            scorer="choice",
            out=tmp_path / "a",
            config=config,
            gateway_url=gw.url,
            concurrency=1,
            backoff_s=0.01,
        )
        doc = await run_evaluation(dataset, opts, QUIET)
        row = doc["results"][0]
        assert row["n"] == 6 and row["errors"] == 0 and doc["retries"] >= 1

        fake.mode = "error_500"  # down for good: errors, counted apart, and no quality
        down = EvalOptions(
            models=["gpt-4"],
            scorer="choice",
            out=tmp_path / "b",
            config=config,
            gateway_url=gw.url,
            concurrency=2,
            backoff_s=0.01,
            max_retries=1,
        )
        doc = await run_evaluation(dataset, down, QUIET)
        row = doc["results"][0]
        assert (row["n"], row["errors"], row["upstream_errors"], row["quality"]) == (0, 6, 6, None)

        fake.mode = "ok"  # resuming calls the failed ones again
        doc = await run_evaluation(dataset, dataclasses.replace(down, resume=True), QUIET)
        assert doc["results"][0]["n"] == 6 and doc["calls_made"] == 6


async def test_scorer_crash_marks_the_item_and_unknown_names_are_listed(tmp_path: Path) -> None:
    lines = [
        {"id": "ok", "prompt": "What is 2+2?", "expected": "4"},
        {"id": "bad", "prompt": "Name a colour", "expected": "blue"},
    ]  # no number: the scorer raises
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    async with RecordedFake([]) as fake:
        await fake.start()
        config = parse_config(gateway_yaml(fake.base_url))
        async with running_gateway(config) as gw:
            opts = EvalOptions(models=["gpt-4"], scorer="number", out=tmp_path / "run", gateway_url=gw.url)
            doc = await run_evaluation(load_dataset(path), opts, QUIET)
            row = doc["results"][0]
            assert (row["n"], row["scorer_errors"], row["quality"]) == (1, 1, 0.0)  # "I cannot answer that."
            assert row["cost_usd"] > 0  # no --config: priced from the price database by the served name
            with pytest.raises(
                EvalError, match=r"unknown model\(s\) gpt-5; the gateway serves: gpt-35, gpt-4, mistral-7b"
            ):
                await run_evaluation(
                    load_dataset(path), EvalOptions(models=["gpt-5"], out=tmp_path / "x", gateway_url=gw.url), QUIET
                )


def test_bad_dataset_lines_are_named_or_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": \n{"messages": [{"role": "user"}]}\n{"prompt": "b", "task": "t"}\n')
    with pytest.raises(DatasetError, match=r"d.jsonl: line 2: not valid JSON"):
        load_dataset(path)
    data = load_dataset(path, skip_bad=True, task="qa")
    assert data.skipped == 2 and [i.task for i in data.items] == ["qa", "t"]
    assert data.items[0].id == load_dataset(path, skip_bad=True).items[0].id  # a stable id from the content
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('id,prompt,expected,request\n1,hi,hello,"{""max_tokens"": 5}"\n2,,x,\n')
    with pytest.raises(DatasetError, match=r"d.csv: line 3: needs 'messages'"):
        load_dataset(csv_path)
    one = load_dataset(csv_path, skip_bad=True).items[0]
    assert (one.id, one.expected, one.request) == ("1", "hello", {"max_tokens": 5})
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"prompt": "a", "request": {"model": "x"}}\n')
    with pytest.raises(DatasetError, match="may not set model"):
        load_dataset(bad)


async def test_repeats_report_their_spread(tmp_path: Path) -> None:
    items = routerbench_items()[:5]
    dataset = load_dataset(write_dataset(items, tmp_path / "d.jsonl"))
    async with recorded_gateway(items) as (_fake, config, gw):
        opts = EvalOptions(
            models=["gpt-35"], scorer="choice", out=tmp_path / "run", config=config, gateway_url=gw.url, repeats=3
        )
        doc = await run_evaluation(dataset, opts, QUIET)
    row = doc["results"][0]
    assert doc["calls_made"] == 15 and row["n"] == 5
    assert len(row["repeat_quality"]) == 3 and row["repeat_std"] == 0.0  # recorded answers do not vary


async def test_a_larger_limit_extends_a_resumed_run(tmp_path: Path) -> None:
    items = routerbench_items()[:4]
    dataset = load_dataset(write_dataset(items, tmp_path / "d.jsonl"))
    async with recorded_gateway(items) as (_fake, config, gw):
        first = EvalOptions(
            models=["gpt-4"], scorer="choice", out=tmp_path / "run", config=config, gateway_url=gw.url, limit=2
        )
        assert (await run_evaluation(dataset, first, QUIET))["calls_made"] == 2
        more = await run_evaluation(dataset, dataclasses.replace(first, limit=4, resume=True), QUIET)
    assert more["calls_made"] == 2 and more["results"][0]["n"] == 4


async def test_ctrl_c_keeps_what_is_done(tmp_path: Path) -> None:
    items = routerbench_items()[:40]
    data = write_dataset(items, tmp_path / "d.jsonl")
    async with RecordedFake(items, mode="slow", delay=0.05) as fake:
        await fake.start()
        args, env, out = eval_command(tmp_path, data, fake.base_url)
        proc = await started_with_results(args, env, out, 5)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"--resume" in err
    kept = results(out)
    assert 5 <= len(kept) < len(items) and all(r["score"] is not None for r in kept)


async def test_deployment_rate_limits_pace_the_run_without_errors(tmp_path: Path) -> None:
    """An RPM limit answers the excess with 429 + Retry-After at the gateway; the run waits and goes on."""
    items = routerbench_items()[:64]
    dataset = load_dataset(write_dataset(items, tmp_path / "d.jsonl"))
    async with RecordedFake(items) as fake:
        await fake.start()
        config = parse_config(gateway_yaml(fake.base_url, rpm=60) + "routing: {limits: {max_wait_ms: 0}}\n")
        async with running_gateway(config) as gw:
            opts = EvalOptions(
                models=["mistral-7b"],
                scorer="choice",
                out=tmp_path / "run",
                config=config,
                gateway_url=gw.url,
                concurrency=16,
                backoff_s=0.05,
            )
            doc = await run_evaluation(dataset, opts, QUIET)
    row = doc["results"][0]
    assert row["n"] == 64 and row["errors"] == 0 and row["upstream_errors"] == 0
    assert doc["retries"] >= 1  # some calls were told to wait
    assert len(fake.requests) == 64  # the upstream never saw more than the limit allowed, nor a retry
