"""Why each answer stopped reaches the ledger for every wire, streamed or not, and the report shows the
share of answers cut at the length limit per task (real gateway, official clients, fake upstreams on loopback)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from click.testing import CliRunner
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.cli import main

LONG = "Tell me a long story about seven dragons, three castles and one very patient librarian." * 3


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningGateway, Path, str]]:
    path = tmp_path_factory.mktemp("finish") / "ledger.db"
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url)
    config += f'ledger: {{path: "{path}", flush_interval_ms: 20}}\n'
    async with running_gateway(config) as running:
        yield running, path, config


async def finish_reason(gw: tuple[RunningGateway, Path, str], request_id: str) -> Any:
    running, path, _ = gw
    await running.flush_ledger()
    conn = sqlite3.connect(path)
    found = conn.execute("SELECT finish_reason FROM requests WHERE request_id = ?", (request_id,)).fetchall()
    conn.close()
    assert len(found) == 1
    return found[0][0]


def task(name: str) -> dict[str, str]:
    return {"x-tokenomy-task": name}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("limit", "want"), [(3, "length"), (None, "stop")])
async def test_chat(gw: tuple[RunningGateway, Path, str], stream: bool, limit: int | None, want: str) -> None:
    client = openai.AsyncOpenAI(base_url=gw[0].v1, api_key="unused", max_retries=0)
    extra = {} if limit is None else {"max_tokens": limit}
    raw = await client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": LONG}], stream=stream,
        extra_headers=task("cut" if limit else "whole"), **extra,  # type: ignore[arg-type]
    )  # fmt: skip
    reply = raw.parse()
    if stream:
        reasons = [c.choices[0].finish_reason async for c in reply if c.choices]  # type: ignore[union-attr]
        assert reasons[-1] == want
    else:
        assert reply.choices[0].finish_reason == want  # type: ignore[union-attr]
    assert await finish_reason(gw, raw.headers["x-request-id"]) == want


@pytest.mark.parametrize("stream", [False, True])
async def test_legacy_completions(gw: tuple[RunningGateway, Path, str], stream: bool) -> None:
    client = openai.AsyncOpenAI(base_url=gw[0].v1, api_key="unused", max_retries=0)
    raw = await client.completions.with_raw_response.create(
        model="fast", prompt=LONG, max_tokens=2, stream=stream, extra_headers=task("cut")
    )
    reply = raw.parse()
    if stream:
        async for _ in reply:  # type: ignore[union-attr]
            pass
    assert await finish_reason(gw, raw.headers["x-request-id"]) == "length"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("limit", "want", "stop"), [(3, "length", "max_tokens"), (500, "stop", "end_turn")])
async def test_anthropic_messages(
    gw: tuple[RunningGateway, Path, str], stream: bool, limit: int, want: str, stop: str
) -> None:
    client = anthropic.AsyncAnthropic(base_url=gw[0].url, api_key="unused", max_retries=0)
    raw = await client.messages.with_raw_response.create(
        model="claude", max_tokens=limit, messages=[{"role": "user", "content": LONG}], stream=stream,
        extra_headers=task("cut" if want == "length" else "whole"),
    )  # fmt: skip
    reply = await raw.parse()
    if stream:
        stops = [e.delta.stop_reason async for e in reply if e.type == "message_delta"]  # type: ignore[union-attr]
        assert stops == [stop]
    else:
        assert reply.stop_reason == stop  # type: ignore[union-attr]
    assert await finish_reason(gw, raw.headers["x-request-id"]) == want


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_api(gw: tuple[RunningGateway, Path, str], stream: bool) -> None:
    client = openai.AsyncOpenAI(base_url=gw[0].v1, api_key="unused", max_retries=0)
    raw = await client.responses.with_raw_response.create(
        model="fast", input=LONG, max_output_tokens=16, stream=stream, extra_headers=task("cut")
    )
    reply = raw.parse()
    if stream:
        kinds = [event.type async for event in reply]  # type: ignore[union-attr]
        assert kinds[-1] == "response.incomplete"
    else:
        assert reply.status == "incomplete"  # type: ignore[union-attr]
    assert await finish_reason(gw, raw.headers["x-request-id"]) == "length"


async def test_report_shows_the_share_cut_at_the_limit_per_task(
    gw: tuple[RunningGateway, Path, str], tmp_path: Path
) -> None:
    running, _, config = gw
    client = openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0)
    for limit in (2, 2, None, None, None):  # task "mixed": 2 of 5 answers cut short
        extra = {} if limit is None else {"max_tokens": limit}
        await client.chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": LONG}],
            extra_headers=task("mixed"),
            **extra,  # type: ignore[arg-type]
        )
    await running.flush_ledger()
    file = tmp_path / "tokenomy.yaml"
    file.write_text(config)
    result = CliRunner().invoke(main, ["report", "--config", str(file), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    groups = {g["group"]: g for g in json.loads(result.stdout)}
    mixed = groups["mixed"]
    assert (mixed["finished_answers"], mixed["length_stops"], mixed["length_stop_rate"]) == (5, 2, 0.4)
    assert groups["whole"]["length_stop_rate"] == 0.0
    assert groups["cut"]["length_stop_rate"] == 1.0
