"""``GET /metrics`` of a real gateway after mixed traffic: ``promtool check metrics`` finds nothing to
complain about, and the usage series carry the right labels; task tags beyond the limit fold into ``other``."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

PROMTOOL = shutil.which("promtool")
_RUN = uuid.uuid4().hex[:8]
_COUNTER = itertools.count()
WEIRD_TASK = 'odd "tag" \\ with, commas'

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def gateway(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, path: Path, extra: str = ""
) -> AbstractAsyncContextManager[RunningGateway]:
    """A gateway on the fakes with its own SQLite ledger, flushed every 20 ms."""
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url)
    config += f'ledger: {{path: "{path}", flush_interval_ms: 20}}\n' + extra
    return running_gateway(config)


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    async with gateway(openai_fake, anthropic_fake, tmp_path_factory.mktemp("ledger") / "l.db") as running:
        yield running


async def post(
    session: aiohttp.ClientSession, gw: RunningGateway, path: str, body: dict[str, Any], **headers: str
) -> int:
    async with session.post(f"{gw.v1}/{path}", json=body, headers=headers) as response:
        await response.read()
        return response.status


async def scrape(gw: RunningGateway) -> tuple[str, Samples]:
    """Flush the ledger (its hooks update the usage counters), then fetch and parse ``/metrics``."""
    await gw.flush_ledger()
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = await response.text()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    """Label sets of the ``name`` series that match ``labels``."""
    return [
        dict(ls) for (n, ls), _ in samples.items() if n == name and all(dict(ls).get(k) == v for k, v in labels.items())
    ]


def msg() -> list[dict[str, str]]:
    """A prompt never sent before (the exact cache would answer a repeated one)."""
    return [{"role": "user", "content": f"Name three rivers of Europe ({_RUN}-{next(_COUNTER)})."}]


async def send_mix(gw: RunningGateway, upstream: OpenAIFake) -> None:
    """OK, streamed, embeddings, 4xx, upstream 5xx, odd and no task tags, and one cache hit."""
    async with aiohttp.ClientSession() as session:
        chat = {"model": "fast", "messages": msg(), "temperature": 0}  # deterministic: cacheable
        assert await post(session, gw, "chat/completions", chat, **{"x-tokenomy-task": "prom-chat"}) == 200
        assert await post(session, gw, "chat/completions", chat, **{"x-tokenomy-task": "prom-hit"}) == 200
        stream = {"model": "fast", "messages": msg(), "stream": True, "stream_options": {"include_usage": True}}
        assert await post(session, gw, "chat/completions", stream, **{"x-tokenomy-task": "prom-stream"}) == 200
        embed = {"model": "embed", "input": [f"a {_RUN}", f"b {next(_COUNTER)}"]}
        assert await post(session, gw, "embeddings", embed, **{"x-tokenomy-task": "prom-embed"}) == 200
        unknown = {"model": "no-such-model", "messages": msg()}
        assert await post(session, gw, "chat/completions", unknown, **{"x-tokenomy-task": "prom-4xx"}) == 404
        upstream.queue_modes("error_500")
        failing = {"model": "fast", "messages": msg()}
        assert await post(session, gw, "chat/completions", failing, **{"x-tokenomy-task": "prom-5xx"}) == 502
        weird = {"model": "fast", "messages": msg()}
        assert await post(session, gw, "chat/completions", weird, **{"x-tokenomy-task": WEIRD_TASK}) == 200
        assert await post(session, gw, "chat/completions", {"model": "fast", "messages": msg()}) == 200  # untagged


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: prometheus)")
async def test_metrics_pass_promtool(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    await send_mix(gw, openai_fake)
    text, _ = await scrape(gw)
    assert PROMTOOL is not None
    command = [PROMTOOL, "check", "metrics"]
    result = await asyncio.to_thread(subprocess.run, command, input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


async def test_usage_series_carry_their_labels(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    _, before = await scrape(gw)
    await send_mix(gw, openai_fake)
    _, after = await scrape(gw)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    chat = {"model": "fast", "provider": "openai", "task": "prom-chat"}
    assert delta("tokenomy_requests_total", endpoint="chat", status="2xx", **chat) == 1
    assert delta("tokenomy_tokens_total", direction="input", **chat) > 0
    assert delta("tokenomy_tokens_total", direction="output", **chat) > 0
    assert delta("tokenomy_cost_usd_total", **chat) > 0
    assert delta("tokenomy_baseline_cost_usd_total", model="fast", task="prom-chat") == pytest.approx(
        delta("tokenomy_cost_usd_total", **chat)
    )  # no lever applied
    assert delta("tokenomy_request_duration_seconds_count", endpoint="chat", model="fast", task="prom-chat") == 1

    stream = {"endpoint": "chat", "model": "fast", "task": "prom-stream"}
    assert delta("tokenomy_time_to_first_token_seconds_count", **stream) == 1
    assert delta("tokenomy_tokens_total", model="fast", provider="openai", task="prom-stream", direction="output") > 0

    embed = {"model": "embed", "provider": "openai", "task": "prom-embed"}
    assert delta("tokenomy_requests_total", endpoint="embeddings", status="2xx", **embed) == 1
    assert delta("tokenomy_tokens_total", direction="input", **embed) > 0
    assert delta("tokenomy_cost_usd_total", **embed) > 0

    unknown = {"endpoint": "chat", "model": "unknown", "provider": "none", "task": "prom-4xx", "status": "4xx"}
    assert delta("tokenomy_requests_total", **unknown) == 1
    assert delta("tokenomy_requests_total", endpoint="chat", status="5xx", **{**chat, "task": "prom-5xx"}) == 1
    assert series(after, "tokenomy_upstream_errors_total", type="server_error")
    assert not series(after, "tokenomy_cost_usd_total", task="prom-5xx")  # a failed call costs nothing
    assert not series(after, "tokenomy_cost_usd_total", task="prom-4xx")
    assert delta("tokenomy_cache_outcomes_total", task="prom-chat", outcome="miss") == 1
    hit = {"endpoint": "chat", "model": "fast", "provider": "none", "task": "prom-hit", "status": "2xx"}
    assert delta("tokenomy_requests_total", **hit) == 1
    assert delta("tokenomy_cache_outcomes_total", task="prom-hit", outcome="hit-exact") == 1
    assert delta("tokenomy_saved_usd_total", lever="cache", task="prom-hit") == pytest.approx(
        delta("tokenomy_baseline_cost_usd_total", model="fast", task="prom-hit")
    )
    assert delta("tokenomy_saved_usd_total", lever="cache", task="prom-hit") > 0
    assert delta("tokenomy_requests_total", endpoint="chat", status="2xx", **{**chat, "task": WEIRD_TASK}) == 1
    assert delta("tokenomy_requests_total", endpoint="chat", status="2xx", **{**chat, "task": "untagged"}) == 1
    assert value(after, "tokenomy_ledger_records_written_total") > 0
    assert value(after, "tokenomy_ledger_store_up") == 1


async def test_task_tags_beyond_the_limit_fold_into_other(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path
) -> None:
    limit = "telemetry: {max_task_labels: 2}\n"
    async with gateway(openai_fake, anthropic_fake, tmp_path / "l.db", limit) as gw:
        _, before = await scrape(gw)
        async with aiohttp.ClientSession() as session:
            for i in (1, 2, 3, 4, 5, 1):
                body = {"model": "fast", "messages": msg()}
                assert await post(session, gw, "chat/completions", body, **{"x-tokenomy-task": f"fold-{i}"}) == 200
        _, after = await scrape(gw)

    labels = {"endpoint": "chat", "model": "fast", "provider": "openai", "status": "2xx"}
    assert value(after, "tokenomy_requests_total", task="fold-1", **labels) == 2
    assert value(after, "tokenomy_requests_total", task="fold-2", **labels) == 1
    for name in ("tokenomy_requests_total", "tokenomy_tokens_total", "tokenomy_cost_usd_total"):
        for i in (3, 4, 5):
            assert not series(after, name, task=f"fold-{i}"), f"fold-{i} kept its own {name} label"
    other = value(after, "tokenomy_requests_total", task="other", **labels)
    assert other - value(before, "tokenomy_requests_total", task="other", **labels) == 3
    cost = {"model": "fast", "provider": "openai", "task": "other"}
    assert value(after, "tokenomy_cost_usd_total", **cost) > value(before, "tokenomy_cost_usd_total", **cost)
    assert value(after, "tokenomy_baseline_cost_usd_total", model="fast", task="other") > 0
