"""A router trained for real (MiniLM embeddings) serving through a real gateway."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.providers.local.shared_embed import shared_embedder
from tokenomy.routing.cli import router

DATA = Path(__file__).parent / "data" / "routerbench_sample.csv.gz"
CHEAP, DEAR = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("learned") / "router.npz"
    result = CliRunner().invoke(router, ["train", "--outcomes", str(DATA), "--out", str(out), "--folds", "3"])
    assert result.exit_code == 0, result.output
    return out


def config_text(out: Path, url: str, home: Path, extra: str = "") -> str:
    deployment = (
        '{{provider: openai, base_url: "{url}", api_key: "${{T_KEY:-{key}}}", model: {model}, pricing: {price}}}'
    )
    models = "\n".join(
        f"  - name: {name}\n    deployments:\n      - "
        + deployment.format(url=url, key=OPENAI_KEY, model=upstream, price=price)
        for name, upstream, price in (
            (CHEAP, "cheap-up", "{input_per_mtok: 0.6, output_per_mtok: 0.6}"),
            (DEAR, "dear-up", "{input_per_mtok: 10, output_per_mtok: 30}"),
        )
    )
    return f"""
ledger: {{path: "{home / "l.db"}", flush_interval_ms: 20}}
routers:
  - {{name: smart-auto, kind: learned, router_file: "{out}", candidates: ["{CHEAP}", "{DEAR}"]}}
models:
{models}
{extra}"""


async def test_trained_router_picks_a_candidate_through_the_gateway(
    openai_fake: OpenAIFake, tmp_path: Path, trained: Path
) -> None:
    async with running_gateway(config_text(trained, openai_fake.base_url, tmp_path)) as gw:
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


async def test_the_router_and_the_semantic_tier_share_one_embedder(
    openai_fake: OpenAIFake, tmp_path: Path, trained: Path
) -> None:
    """Beside a learned router the semantic tier keeps float32 (``embedder_arithmetic: auto``), and both
    use the embedder whose threads wait as ``server.onnx_spinning`` says: the prompt is embedded once."""
    extra = f"""server: {{onnx_spinning: never}}
cache:
  semantic: {{enabled: true, index_path: "{tmp_path / "s.usearch"}"}}
"""
    embedder = shared_embedder("float32", "never")
    async with running_gateway(config_text(trained, openai_fake.base_url, tmp_path, extra)) as gw:
        assert gw.app.gateway.semantic._embed == embedder.aembed
        client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        before = embedder.computed
        prompts = [
            "Which planet in the solar system has the most moons?",
            "which planet in the solar system has the most moons",
        ]
        caches = []
        for prompt in prompts:
            raw = await client.chat.completions.with_raw_response.create(
                model="smart-auto", temperature=0, messages=[{"role": "user", "content": prompt}]
            )
            caches.append(raw.headers["x-tokenomy-cache"])
    assert caches == ["miss", "hit-semantic"]
    assert embedder.computed == before + 2  # the router embedded each prompt; the lookups read them from memory
