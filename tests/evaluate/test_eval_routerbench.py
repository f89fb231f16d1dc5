"""``tokenomy eval`` through a real gateway whose fake upstream answers with RouterBench's recorded responses."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import httpx
from rich.console import Console
from tests.evaluate.helpers import MODELS, RecordedFake, gateway_yaml, routerbench_items, write_dataset
from tests.support.gateway import running_gateway

from tokenomy.config import parse_config
from tokenomy.evaluate.command import EvalOptions, run_evaluation
from tokenomy.evaluate.dataset import load_dataset
from tokenomy.evaluate.summary import bootstrap_ci
from tokenomy.routing.learned.outcomes import load_outcomes
from tokenomy.routing.policy import load_policy_file

MIN_QUALITY = 0.8


async def test_choice_scorer_reproduces_recorded_accuracy_and_policy_routes_as_measured(tmp_path: Path) -> None:
    items = routerbench_items()
    dataset = load_dataset(write_dataset(items, tmp_path / "mc.jsonl"))
    async with RecordedFake(items) as fake:
        await fake.start()
        yaml_text = gateway_yaml(fake.base_url)
        config = parse_config(yaml_text)
        async with running_gateway(config) as gw:
            options = EvalOptions(
                models=list(MODELS),
                scorer="choice",
                out=tmp_path / "run",
                config=config,
                gateway_url=gw.url,
                concurrency=16,
                write_policy=tmp_path / "policy.yaml",
                min_quality=MIN_QUALITY,
            )
            doc = await run_evaluation(dataset, options, Console(file=io.StringIO()))

    # 1. each model's accuracy equals the file's 0/1 labels, per task
    labels: dict[tuple[str, str], list[float]] = defaultdict(list)
    for item in items:
        for name, (upstream, _, _) in MODELS.items():
            labels[(name, item["task"])].append(item["labels"][upstream])
    got = {(r["model"], r["task"]): r for r in doc["results"]}
    assert len(got) == len(labels) == 8
    for key, values in labels.items():
        row = got[key]
        assert row["n"] == len(values) and row["errors"] == 0
        assert abs(row["quality"] - sum(values) / len(values)) <= 0.02, (key, row["quality"])
        assert row["ci_low"] <= row["quality"] <= row["ci_high"]
        assert row["cost_usd"] > 0 and row["prompt_tokens"] > 0 and row["p50_latency_ms"] is not None

    # 2. the policy: per task, the cheapest model whose recorded accuracy's lower bound meets the bar
    price = {name: inp for name, (_, inp, _) in MODELS.items()}
    for task in ("arc-challenge", "winogrande"):
        able = [m for m in MODELS if bootstrap_ci(labels[(m, task)])[0] >= MIN_QUALITY]
        assert able, task
        assert doc["policy"][task] == min(able, key=price.__getitem__)
    assert doc["policy"] == {"arc-challenge": "yi-34b", "winogrande": "gpt-4"}  # what the labels give at 0.8
    assert doc["pareto"]["arc-challenge"][0] == "mistral-7b"  # the cheapest model is always on the front

    # 3. the written policy loads in a gateway and routes each task to the measured choice
    policies = load_policy_file(tmp_path / "policy.yaml")
    assert set(policies.tasks) == {"arc-challenge", "winogrande"}
    routed = yaml_text + f"routers:\n  - {{name: auto, kind: policy, policies_file: '{tmp_path / 'policy.yaml'}'}}\n"
    async with RecordedFake(items) as fake2:
        await fake2.start()
        async with running_gateway(routed.replace(fake.base_url, fake2.base_url)) as gw2, httpx.AsyncClient() as http:
            for task, model in doc["policy"].items():
                resp = await http.post(
                    f"{gw2.url}/v1/chat/completions",
                    json={"model": "auto", "messages": [{"role": "user", "content": items[0]["prompt"]}]},
                    headers={"x-tokenomy-task": task},
                )
                assert resp.status_code == 200, resp.text
                assert resp.headers["x-tokenomy-model"] == model
                assert fake2.last.body["model"] == MODELS[model][0]

    # 4. the outcomes file is what the learned router trains on
    outcomes = load_outcomes(tmp_path / "run" / "outcomes.csv")
    assert outcomes.models == list(MODELS) and len(outcomes) == len(items) and outcomes.skipped == 0
    gpt4 = outcomes.models.index("gpt-4")
    assert (
        abs(
            outcomes.scores[:, gpt4].mean()
            - sum(v for (m, _), vs in labels.items() if m == "gpt-4" for v in vs) / len(items)
        )
        < 1e-9
    )
    assert (outcomes.costs[:, gpt4] > outcomes.costs[:, 0]).all()
    for name in ("pareto.png", "report.html", "summary.json", "results.jsonl"):
        assert (tmp_path / "run" / name).stat().st_size > 0
