"""Recorded-answer upstreams and datasets for the evaluation tests (RouterBench fixture, see data/SOURCE.md)."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.config import GatewayConfig, parse_config

DATA = Path(__file__).parent / "data"

# gateway name -> (RouterBench model, input $/Mtok, output $/Mtok); the price order follows RouterBench's costs
MODELS: dict[str, tuple[str, float, float]] = {
    "mistral-7b": ("mistralai/mistral-7b-chat", 0.2, 0.2),
    "yi-34b": ("zero-one-ai/Yi-34B-Chat", 0.8, 0.8),
    "gpt-35": ("gpt-3.5-turbo-1106", 1.0, 2.0),
    "gpt-4": ("gpt-4-1106-preview", 10.0, 30.0),
}


def routerbench_items() -> list[dict[str, Any]]:
    """The fixture rows: id, task, prompt, expected letter, and per RouterBench model its label and response."""
    with gzip.open(DATA / "routerbench_mc.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write_dataset(items: list[dict[str, Any]], path: Path) -> Path:
    """The items as an evaluation dataset (JSON Lines: id, task, prompt, expected)."""
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps({k: item[k] for k in ("id", "task", "prompt", "expected")}) + "\n")
    return path


class RecordedFake(OpenAIFake):
    """Answers each (upstream model, prompt) with the response RouterBench recorded for it."""

    def __init__(self, items: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorded = {(m, item["prompt"]): r for item in items for m, r in item["responses"].items()}

    def answer(self, model: str, user_text: str) -> str:
        return self.recorded.get((model, user_text), "I cannot answer that.")


def gateway_yaml(base_url: str, extra: str = "", rpm: int | None = None) -> str:
    """A gateway config serving the four models from one fake upstream, with per-token prices."""
    lines = ["ledger: {enabled: false}", "models:"]
    for name, (upstream, inp, out) in MODELS.items():
        limit = f", rpm: {rpm}" if rpm else ""
        lines.append(
            f"  - {{name: {name}, deployments: [{{provider: openai, base_url: '{base_url}', model: '{upstream}', "
            f"pricing: {{input_per_mtok: {inp}, output_per_mtok: {out}}}{limit}}}]}}"
        )
    return "\n".join(lines) + "\n" + extra


@asynccontextmanager
async def recorded_gateway(
    items: list[dict[str, Any]],
) -> AsyncIterator[tuple[RecordedFake, GatewayConfig, RunningGateway]]:
    """A recorded-answer upstream and a real gateway in front of it (the four models, priced)."""
    async with RecordedFake(items) as fake:
        await fake.start()
        config = parse_config(gateway_yaml(fake.base_url))
        async with running_gateway(config) as gw:
            yield fake, config, gw
