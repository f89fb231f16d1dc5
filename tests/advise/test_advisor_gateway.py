"""The advisor on a ledger built by real requests through a gateway on loopback, with planted opportunities.

The traffic plants four: repeated prompts at temperature 0.7 (cache), a task whose evaluation says a
model ten times cheaper meets its bar (model), a long shared system prompt (prompt caching) and a burst
of non-streamed requests (batch). The true saving of each is computed here from the traffic sent
(the fake upstream counts one token per word) and the configured prices, independently of the ledger.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from tests.fakes.openai_upstream import start_openai_fake
from tests.support.gateway import running_gateway

from tokenomy.cli import main

BIG = (5.0, 15.0, 2.5)  # input, output, cached input: USD per million tokens
SMALL = (0.5, 1.5, 0.05)
CONFIG = """
ledger: {{path: "{ledger}", flush_interval_ms: 20, store_prompts: true}}
models:
  - name: big
    deployments:
      - {{provider: openai, base_url: "{url}", api_key: "${{T_ADVISE_KEY:-sk-x}}", model: big-upstream,
          pricing: {{input_per_mtok: {b[0]}, output_per_mtok: {b[1]}, cached_input_per_mtok: {b[2]}}}}}
  - name: small
    deployments:
      - {{provider: openai, base_url: "{url}", api_key: "${{T_ADVISE_KEY:-sk-x}}", model: small-upstream,
          pricing: {{input_per_mtok: {s[0]}, output_per_mtok: {s[1]}, cached_input_per_mtok: {s[2]}}}}}
"""
EVIDENCE = {
    "tasks": {
        "classify": {
            "min_quality": 0.9,
            "candidates": [
                {"model": "small", "quality": 0.91, "input_per_mtok": SMALL[0], "output_per_mtok": SMALL[1]},
                {"model": "big", "quality": 0.93, "input_per_mtok": BIG[0], "output_per_mtok": BIG[1]},
            ],
        }
    }
}
SYSTEM = " ".join(f"clause{i} of the standing contract terms" for i in range(300))  # 1,800 words


def _words(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(10**6)}" for _ in range(n))


def _cost(price: tuple[float, float, float], prompt: int, completion: int) -> float:
    return (prompt * price[0] + completion * price[1]) / 1e6


class Traffic:
    """What was sent, and the true saving of each planted opportunity."""

    def __init__(self) -> None:
        self.truth: dict[str, float] = {"cache": 0.0, "model": 0.0, "prompt-caching": 0.0, "batch": 0.0}

    async def send(
        self,
        client: openai.AsyncOpenAI,
        task: str,
        model: str,
        messages: list[dict[str, str]],
        temperature: float = 0.0,
    ) -> tuple[int, int]:
        reply = await client.chat.completions.create(
            model=model,
            messages=messages,
            temperature=temperature,
            extra_headers={"x-tokenomy-task": task},  # type: ignore[arg-type]
        )
        assert reply.usage is not None
        return reply.usage.prompt_tokens, reply.usage.completion_tokens


@pytest.fixture(scope="module")
async def planted(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Path, Path, dict[str, float]]]:
    tmp = tmp_path_factory.mktemp("advise")
    ledger = tmp / "ledger.db"
    fake = await start_openai_fake()
    config = CONFIG.format(ledger=ledger, url=fake.base_url, b=BIG, s=SMALL)
    (tmp / "tokenomy.yaml").write_text(config)
    (tmp / "evidence.json").write_text(json.dumps(EVIDENCE))
    rng = random.Random(7)
    t = Traffic()
    async with running_gateway(config) as gw:
        client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        faq = [_words(rng, 12) for _ in range(6)]
        seen: set[str] = set()
        # interactive traffic, spread over a few seconds
        for i in range(30):
            question = faq[i % 6]
            p, c = await t.send(client, "faq", "big", [{"role": "user", "content": question}], temperature=0.7)
            if question in seen:
                t.truth["cache"] += _cost(BIG, p, c)
            seen.add(question)
            p, c = await t.send(client, "classify", "big", [{"role": "user", "content": _words(rng, 15)}])
            t.truth["model"] += _cost(BIG, p, c) - _cost(SMALL, p, c)
            if i < 25:
                messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _words(rng, 10)}]
                p, c = await t.send(client, "contract", "small", messages)
                if i > 0:  # the first request fills the provider's cache
                    t.truth["prompt-caching"] += len(SYSTEM.split()) * (SMALL[0] - SMALL[2]) / 1e6
            await asyncio.sleep(0.12)
        # the nightly job: a burst of 40 requests at once
        burst = [t.send(client, "nightly", "big", [{"role": "user", "content": _words(rng, 14)}]) for _ in range(40)]
        for p, c in await asyncio.gather(*burst):
            t.truth["batch"] += 0.5 * _cost(BIG, p, c)
        await gw.flush_ledger()
    await fake.close()
    yield tmp / "tokenomy.yaml", tmp / "evidence.json", t.truth


def _advise(config: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["advise", "--config", str(config), "--format", "json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def test_planted_opportunities_rank_first_with_true_savings(planted: tuple[Path, Path, dict[str, float]]) -> None:
    config, evidence, truth = planted
    advice = _advise(config, "--evidence", str(evidence))
    recs = advice["recommendations"]
    assert isinstance(recs, list)
    top = {(r["kind"], r["task"]) for r in recs[:4]}
    assert top == {("cache", "faq"), ("model", "classify"), ("prompt-caching", "contract"), ("batch", "nightly")}
    for rec in recs[:4]:
        assert rec["window_saving_usd"] == pytest.approx(truth[rec["kind"]], rel=0.10), rec["title"]
        assert rec["evidence"] and rec["action"] and rec["assumptions"]
        assert rec["monthly_saving_usd"] == pytest.approx(rec["window_saving_usd"] * advice["month_factor"])
    # the model advice rests on the evaluation file; the cache advice says why the cache missed
    model = next(r for r in recs if r["kind"] == "model" and r["task"] == "classify")
    assert model["confidence"] == "high" and "small" in model["title"]
    cache = next(r for r in recs if r["kind"] == "cache")
    assert "nondeterministic: true" in cache["action"]


def test_without_evidence_cheaper_models_are_only_candidates(planted: tuple[Path, Path, dict[str, float]]) -> None:
    config, _, _ = planted
    recs = _advise(config)["recommendations"]
    assert isinstance(recs, list)
    model = [r for r in recs if r["kind"] == "model"]
    assert model and all(r["confidence"] == "low" and r["title"].startswith("Evaluate") for r in model)


def test_table_output_and_an_empty_window(planted: tuple[Path, Path, dict[str, float]]) -> None:
    config, evidence, _ = planted
    result = CliRunner().invoke(main, ["advise", "--config", str(config), "--evidence", str(evidence)])
    assert result.exit_code == 0, result.output
    assert "1. " in result.output and "/month" in result.output and "do:" in result.output
    empty = _advise(config, "--since", "2000-01-01", "--until", "2000-01-02")
    assert empty["recommendations"] == [] and empty["records"] == 0
