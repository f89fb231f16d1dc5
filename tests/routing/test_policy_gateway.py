"""Router models through a real gateway, the official ``openai`` client and the fake upstream."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Summarize the plot of Hamlet"}]


def config(url: str, ledger: Path) -> str:
    def dep(model: str, price: float, extra: str = "") -> str:
        return (
            f'[{{provider: openai, base_url: "{url}", api_key: "${{T_OPENAI_KEY:-{OPENAI_KEY}}}", model: {model}, '
            f"pricing: {{input_per_mtok: {price}, output_per_mtok: {price}}}{extra}}}]"
        )

    bad = ", headers: {x-fake-mode: slow_stream}"  # answers "tick0 tick1 ...": fails the checks below
    return f"""
models:
  - {{name: cheap, deployments: {dep("cheap-1", 1.0)}}}
  - {{name: bad-cheap, deployments: {dep("cheap-2", 1.0, bad)}}}
  - {{name: mid, deployments: {dep("mid-1", 3.0)}}}
  - {{name: smart, deployments: {dep("smart-1", 10.0)}}}
routers:
  - name: auto
    kind: policy
    default: {{min_quality: 0.5, candidates: [{{model: cheap, quality: 0.6, cost_per_1k_requests: 1}},
                                              {{model: smart, quality: 0.9, cost_per_1k_requests: 10}}]}}
    tasks:
      summarize:
        min_quality: 0.8
        candidates:
          - {{model: cheap, quality: 0.7, cost_per_1k_requests: 1}}
          - {{model: mid, quality: 0.85, cost_per_1k_requests: 3}}
          - {{model: smart, quality: 0.95, cost_per_1k_requests: 10}}
  - name: casc-regex
    kind: cascade
    steps:
      - {{model: bad-cheap, checks: [{{kind: regex, pattern: "^echo:"}}]}}
      - {{model: smart}}
  - name: casc-json
    kind: cascade
    steps:
      - {{model: bad-cheap, checks: [{{kind: json_schema}}]}}
      - {{model: cheap, checks: [{{kind: logprob, min: -0.01}}]}}
      - {{model: smart, checks: [{{kind: json_schema}}]}}
  - name: casc-ok
    kind: cascade
    steps:
      - {{model: cheap, checks: [{{kind: logprob, min: -0.5}}, {{kind: regex, pattern: Hamlet}}]}}
      - {{model: smart}}
ledger: {{path: "{ledger}", flush_interval_ms: 20}}
"""


@pytest.fixture(scope="module")
async def gw_ledger(
    openai_fake: OpenAIFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningGateway, Path]]:
    path = tmp_path_factory.mktemp("policy") / "ledger.db"
    async with running_gateway(config(openai_fake.base_url, path)) as gw:
        yield gw, path


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


async def ledger_row(gw: RunningGateway, path: Path, request_id: str) -> dict[str, Any]:
    await gw.flush_ledger()
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    found = [dict(r) for r in conn.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,))]
    conn.close()
    assert len(found) == 1
    return found[0]


def upstream_models(fake: OpenAIFake) -> list[str]:
    return [r.body["model"] for r in fake.requests if r.path.endswith("/chat/completions")]


async def test_auto_routes_by_task_and_records_the_routing_saving(
    gw_ledger: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    gw, path = gw_ledger
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="auto",
        messages=MSG,
        extra_headers={"x-tokenomy-task": "summarize"},
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo: Summarize the plot of Hamlet"
    assert upstream_models(openai_fake) == ["mid-1"]  # cheapest meeting 0.8
    row = await ledger_row(gw, path, raw.headers["x-request-id"])
    tokens = row["prompt_tokens"] + row["completion_tokens"]
    assert row["requested_model"] == "auto" and row["route"].startswith("policy:summarize->mid")
    assert row["cost_usd"] == pytest.approx(tokens * 3e-6)
    assert row["baseline_cost_usd"] == pytest.approx(tokens * 10e-6)  # the task's dearest candidate
    assert row["saved_routing_usd"] == pytest.approx(tokens * 7e-6) and row["saved_routing_usd"] > 0


async def test_unknown_task_uses_the_default_policy(
    gw_ledger: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    gw, _ = gw_ledger
    await client(gw).chat.completions.create(model="auto", messages=MSG, metadata={"task": "poetry"})
    assert upstream_models(openai_fake) == ["cheap-1"]


async def test_unknown_router_name_is_a_404(gw_ledger: tuple[RunningGateway, Path]) -> None:
    gw, _ = gw_ledger
    with pytest.raises(openai.NotFoundError) as info:
        await client(gw).chat.completions.create(model="autox", messages=MSG)
    assert "autox" in str(info.value)


async def test_cascade_falls_through_and_streams_the_accepted_answer(
    gw_ledger: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    gw, path = gw_ledger
    stream = await client(gw).chat.completions.create(
        model="casc-regex",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, request_id, usage = [], None, None
    async for chunk in stream:
        request_id = request_id or stream.response.headers["x-request-id"]
        pieces += [c.delta.content or "" for c in chunk.choices]
        usage = chunk.usage or usage
    assert "".join(pieces) == "echo: Summarize the plot of Hamlet" and usage is not None
    assert upstream_models(openai_fake) == ["cheap-2", "smart-1"]
    assert all(r.body.get("stream") is False for r in openai_fake.requests)  # buffered upstream
    assert request_id is not None
    row = await ledger_row(gw, path, request_id)
    # the dearest step answered: the cheap attempt was pure overhead, a negative routing saving
    assert row["route"].startswith("casc") and row["saved_routing_usd"] < 0
    assert row["baseline_cost_usd"] - row["cost_usd"] == pytest.approx(row["saved_routing_usd"])
    assert row["cost_usd"] > usage.total_tokens * 10e-6  # the rejected cheap attempt is paid for too


async def test_cascade_json_and_logprob_checks(gw_ledger: tuple[RunningGateway, Path], openai_fake: OpenAIFake) -> None:
    gw, _ = gw_ledger
    schema: dict[str, Any] = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}
    reply = await client(gw).chat.completions.create(
        model="casc-json",
        messages=MSG,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    assert upstream_models(openai_fake) == ["cheap-2", "cheap-1", "smart-1"]  # not JSON; logprobs too low
    assert reply.choices[0].message.content is not None and '"summary"' in reply.choices[0].message.content
    assert reply.choices[0].logprobs is None  # requested for the check only
    assert openai_fake.requests[1].body.get("logprobs") is True


async def test_cheap_cascade_step_that_passes_saves_against_the_dearest(
    gw_ledger: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    gw, path = gw_ledger
    raw = await client(gw).chat.completions.with_raw_response.create(model="casc-ok", messages=MSG)
    assert upstream_models(openai_fake) == ["cheap-1"]
    row = await ledger_row(gw, path, raw.headers["x-request-id"])
    tokens = row["prompt_tokens"] + row["completion_tokens"]
    assert row["requested_model"] == "casc-ok"
    assert row["baseline_cost_usd"] == pytest.approx(tokens * 10e-6)
    assert row["saved_routing_usd"] == pytest.approx(tokens * 9e-6)
