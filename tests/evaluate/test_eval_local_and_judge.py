"""The embedded local model evaluated in process, and an LLM judge called through the gateway."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from tests.evaluate.helpers import RecordedFake, gateway_yaml
from tests.providers.local.local_support import CHAT_MODEL, local_config
from tests.support.gateway import running_gateway

from tokenomy.config import parse_config
from tokenomy.evaluate.command import EvalOptions, run_evaluation
from tokenomy.evaluate.dataset import load_dataset

QUIET = Console(file=io.StringIO())


def dataset(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_embedded_model_in_process(tmp_path: Path) -> None:
    rows = [
        {"prompt": "What is the capital of France? Answer in one word.", "expected": "Paris", "task": "geo"},
        {"prompt": "Say hello.", "expected": "hello", "task": "chat", "request": {"max_tokens": 4}},
    ]
    config = local_config(CHAT_MODEL, generation={"n_threads": 2, "max_tokens_default": 8})
    opts = EvalOptions(models=[CHAT_MODEL], scorer="contains", out=tmp_path / "run", config=config, concurrency=2)
    doc = await run_evaluation(load_dataset(dataset(tmp_path, rows)), opts, QUIET)
    by_task = {r["task"]: r for r in doc["results"]}
    assert by_task["geo"]["n"] == 1 and by_task["chat"]["n"] == 1
    for row in doc["results"]:
        assert row["errors"] == 0 and row["completion_tokens"] > 0 and row["p50_ttft_ms"] is not None
        assert 0.0 <= row["quality"] <= 1.0
    answers = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert all(a["answer"] and a["deployment"] == f"local/{CHAT_MODEL}" for a in answers)


class JudgingFake(RecordedFake):
    """Candidates answer "Paris" or "Lyon"; the judge prefers the answer that says Paris."""

    def answer(self, model: str, user_text: str) -> str:
        if model == "judge-upstream":
            first = user_text.split("[Answer 1]")[1].split("[Answer 2]")[0]
            second = user_text.split("[Answer 2]")[1]
            if ("Paris" in first) == ("Paris" in second):
                return "TIE"
            return "1" if "Paris" in first else "2"
        return "The capital is Paris." if model == "good-upstream" else "It is Lyon."


async def test_pairwise_judge_through_the_gateway_counts_its_cost(tmp_path: Path) -> None:
    rows = [{"prompt": f"Capital of France? ({i})", "expected": "Paris is the capital."} for i in range(5)]
    extra = "\n".join(
        f"  - {{name: {n}, deployments: [{{provider: openai, base_url: '{{url}}', model: {n}-upstream, "
        f"pricing: {{input_per_mtok: 1, output_per_mtok: 1}}}}]}}"
        for n in ("good", "bad", "judge")
    )
    async with JudgingFake([]) as fake:
        await fake.start()
        config = parse_config(gateway_yaml(fake.base_url) + extra.replace("{url}", fake.base_url) + "\n")
        async with running_gateway(config) as gw:
            opts = EvalOptions(
                models=["good", "bad"], scorer="judge:judge", out=tmp_path / "run", config=config, gateway_url=gw.url
            )
            doc = await run_evaluation(load_dataset(dataset(tmp_path, rows)), opts, QUIET)
    rows_by_model = {r["model"]: r for r in doc["results"]}
    assert rows_by_model["good"]["quality"] == 0.5  # ties with a reference that also says Paris
    assert rows_by_model["bad"]["quality"] == 0.0  # the reference wins in both orders
    judged = [r for r in fake.requests if r.body["model"] == "judge-upstream"]
    assert len(judged) == 2 * 2 * len(rows)  # both orders, every answer
    assert rows_by_model["good"]["scorer_cost_usd"] > 0
    assert doc["spent_usd"] > sum(r["cost_usd"] for r in doc["results"])  # judging is counted in the spend
