"""Load shedding: a full gateway answers 503 with Retry-After at once instead of queueing."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.server.overload import LoopLagMonitor

BODY = b'{"model": "fast", "messages": [{"role": "user", "content": "hi"}]}'


def test_lag_monitor_trips_and_recovers() -> None:
    monitor = LoopLagMonitor(limit_s=0.05, smoothing=0.5)
    for _ in range(5):
        monitor.observe(0.2)
    assert monitor.overloaded
    for _ in range(10):
        monitor.observe(0.0)
    assert not monitor.overloaded


async def test_full_gateway_sheds_quickly(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> None:
    openai_fake.mode = "slow"
    openai_fake.delay = 2.0
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, extra_server=", max_in_flight: 2")
    async with running_gateway(config) as gw, aiohttp.ClientSession() as http:

        async def call() -> tuple[int, float, str | None]:
            started = time.perf_counter()
            async with http.post(f"{gw.v1}/chat/completions", data=BODY,
                                 headers={"content-type": "application/json"}) as resp:
                await resp.read()
                return resp.status, time.perf_counter() - started, resp.headers.get("retry-after")

        results = await asyncio.gather(*(call() for _ in range(6)))
        async with http.get(f"{gw.url}/healthz") as health:
            assert health.status == 200
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 200, 503, 503, 503, 503]
    for status, elapsed, retry_after in results:
        if status == 503:
            assert retry_after == "1"
            assert elapsed < 1.5, "shed requests must not wait for the slow ones"
