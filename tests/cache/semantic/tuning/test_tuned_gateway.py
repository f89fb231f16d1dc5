"""A tuned model served by a real gateway: its hits are the tuned model's decisions, not the shipped one's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

pytest.importorskip("torch")

from tokenomy.cache.cli import embedder
from tokenomy.cache.semantic.calibrate import Pair, load_pairs, similarities
from tokenomy.cache.semantic.tuning.tune import TuneSettings, tune
from tokenomy.cache.semantic.verifier import ModelCheck

DATA = Path(__file__).parents[1] / "data" / "langcache_sample.csv"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tuned")
    settings = TuneSettings(epochs=1, folds=2, threads=2, min_accepted=1, target=0.5)  # 29 pairs certify little
    report = tune(load_pairs(DATA), out, embedder(), settings)
    assert report["written"]
    return out


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tuned: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    home = tmp_path_factory.mktemp("tuned-gateway")
    model, verifier = tuned / "cross-encoder.w8.onnx", tuned / "verifier.json"
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url) + f"""
cache:
  exact: {{path: "{home / "cache.db"}"}}
  semantic: {{enabled: true, index_path: "{home / "semantic.usearch"}", model_path: "{model}",
              verifier_path: "{verifier}", arithmetic: int8}}
ledger: {{path: "{home / "ledger.db"}", flush_interval_ms: 20}}
"""  # fmt: skip
    async with running_gateway(config) as running:
        yield running


def offline(pairs: list[Pair], check: ModelCheck) -> list[bool]:
    """Whether each pair's second question would hit its first, decided offline as a lookup decides."""
    assert check.load(), check.failed
    sims = similarities(embedder(), pairs)
    return [check.decide(p.b, [(p.a, float(s))])[0] >= check.accept for p, s in zip(pairs, sims, strict=True)]


async def test_the_gateway_decides_with_the_tuned_model(gw: RunningGateway, tuned: Path) -> None:
    pairs = load_pairs(DATA)
    expected = offline(pairs, ModelCheck(tuned / "cross-encoder.w8.onnx", tuned / "verifier.json", None, "int8"))
    shipped = offline(pairs, ModelCheck(None, None, None, "int8"))
    assert expected != shipped  # the test tells the two models apart
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    served = []
    for n, pair in enumerate(pairs):
        headers = {"x-tokenomy-cache-namespace": f"pair-{n}"}
        for text in (pair.a, pair.b):
            raw = await client.chat.completions.with_raw_response.create(
                model="fast", messages=[{"role": "user", "content": text}], temperature=0, extra_headers=headers
            )
            await gw.app.gateway.cache.drain()
        served.append(raw.headers["x-tokenomy-cache"] == "hit-semantic")
    assert served == expected
