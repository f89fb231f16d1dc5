"""A router trained for real (MiniLM embeddings) serving through a real gateway."""

from __future__ import annotations

from pathlib import Path

import openai
from click.testing import CliRunner
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.routing.cli import router

DATA = Path(__file__).parent / "data" / "routerbench_sample.csv.gz"
CHEAP, DEAR = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"


async def test_trained_router_picks_a_candidate_through_the_gateway(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    result = CliRunner().invoke(router, ["train", "--outcomes", str(DATA), "--out", str(out), "--folds", "3"])
    assert result.exit_code == 0, result.output
    deployment = (
        '{{provider: openai, base_url: "{url}", api_key: "${{T_KEY:-{key}}}", model: {model}, pricing: {price}}}'
    )
    models = "\n".join(
        f"  - name: {name}\n    deployments:\n      - "
        + deployment.format(url=openai_fake.base_url, key=OPENAI_KEY, model=upstream, price=price)
        for name, upstream, price in (
            (CHEAP, "cheap-up", "{input_per_mtok: 0.6, output_per_mtok: 0.6}"),
            (DEAR, "dear-up", "{input_per_mtok: 10, output_per_mtok: 30}"),
        )
    )
    config = f"""
ledger: {{path: "{tmp_path / "l.db"}", flush_interval_ms: 20}}
routers:
  - {{name: smart-auto, kind: learned, router_file: "{out}", candidates: ["{CHEAP}", "{DEAR}"]}}
models:
{models}
"""
    async with running_gateway(config) as gw:
        client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        served = set()
        for prompt in ("What is 2 + 2?", "Write a Python function that merges two sorted lists in linear time."):
            raw = await client.chat.completions.with_raw_response.create(
                model="smart-auto", messages=[{"role": "user", "content": prompt}]
            )
            served.add(raw.headers["x-tokenomy-model"])
        listed = {m.id async for m in client.models.list()}
    assert served <= {CHEAP, DEAR} and served
    assert {r.body["model"] for r in openai_fake.requests} <= {"cheap-up", "dear-up"}
    assert "smart-auto" in listed
