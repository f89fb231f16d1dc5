"""Scale-out over a local Ray: the same results as a local run, written to the same run directory."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from tests.evaluate.helpers import recorded_gateway, routerbench_items, write_dataset

from tokenomy.evaluate.command import EvalOptions, run_evaluation
from tokenomy.evaluate.dataset import load_dataset

ray = pytest.importorskip("ray")
QUIET = Console(file=io.StringIO())
KEYS = ("model", "task", "n", "errors", "quality", "ci_low", "ci_high", "cost_usd", "prompt_tokens")


async def test_ray_run_matches_a_local_run(tmp_path: Path) -> None:
    items = routerbench_items()[::10]  # 20 items, both tasks
    dataset = load_dataset(write_dataset(items, tmp_path / "d.jsonl"))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        async with recorded_gateway(items) as (fake, config, gw):
            common = {
                "models": ["mistral-7b", "gpt-4"],
                "scorer": "choice",
                "config": config,
                "gateway_url": gw.url,
            }
            local = await run_evaluation(dataset, EvalOptions(out=tmp_path / "local", **common), QUIET)  # type: ignore[arg-type]
            fake.requests.clear()
            sharded = await run_evaluation(
                dataset,
                EvalOptions(
                    out=tmp_path / "ray", ray="auto", write_policy=tmp_path / "p.yaml", min_quality=0.5, **common
                ),  # type: ignore[arg-type]
                QUIET,
            )
            assert len(fake.requests) == 2 * len(items)  # each call made once, by the workers
    finally:
        ray.shutdown()
    assert [{k: r[k] for k in KEYS} for r in sharded["results"]] == [{k: r[k] for k in KEYS} for r in local["results"]]
    assert sharded["calls_made"] == 2 * len(items) and sharded["policy"]
    lines = (tmp_path / "ray" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 * len(items)
