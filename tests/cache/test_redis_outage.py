"""A gateway whose level-2 cache is Redis keeps answering through a Redis outage, and recovers."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import httpx2 as httpx
import pytest
import redis.asyncio as aioredis
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.redis import RedisServer

from tokenomy.telemetry import metrics


def redis_config(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, url: str) -> str:
    cache = f'cache:\n  exact: {{store: redis, redis_url: "${{T_REDIS_OUTAGE_URL:-{url}}}"}}\n'
    return proxy_config(openai_fake.base_url, anthropic_fake.base_url) + cache + "ledger: {enabled: false}\n"


async def ask(gw: RunningGateway, prompt: str) -> str:
    """One deterministic chat request; returns its ``x-tokenomy-cache`` outcome (and checks it answered)."""
    body = {"model": "fast", "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
    started = time.perf_counter()
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{gw.v1}/chat/completions", json=body)
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
    assert time.perf_counter() - started < 1.5  # a dead Redis costs little
    return resp.headers["x-tokenomy-cache"]


async def entries(server: RedisServer) -> int:
    client = aioredis.Redis.from_url(server.url)
    try:
        return len([k async for k in client.scan_iter("tokenomy:c:e:*")])
    finally:
        await client.aclose()


def store_errors() -> float:
    return sum(
        metrics.REGISTRY.get_sample_value("tokenomy_cache_store_errors_total", {"store": "redis", "op": op}) or 0.0
        for op in ("get", "set")
    )


def store_up() -> float | None:
    return metrics.REGISTRY.get_sample_value("tokenomy_cache_store_up")


async def test_requests_are_answered_through_an_outage_and_stored_again_after(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer()
    server.start()
    config = redis_config(openai_fake, anthropic_fake, server.url)
    cached, during, after = (f"question {uuid.uuid4().hex}" for _ in range(3))
    try:
        async with running_gateway(config) as gw:
            assert await ask(gw, cached) == "miss"
            await gw.app.gateway.cache.drain()
            assert await entries(server) == 1
            assert await ask(gw, cached) == "hit-exact"

            errors = store_errors()
            server.stop()
            with caplog.at_level(logging.INFO, logger="tokenomy.cache"):
                assert await ask(gw, during) == "miss"  # the upstream answers
                assert await ask(gw, cached) == "hit-exact"  # level 1 answers
                await gw.app.gateway.cache.drain()
                await asyncio.sleep(1.1)  # past the retry pause: the store is tried, and fails, again
                assert await ask(gw, f"another {uuid.uuid4().hex}") == "miss"
                await gw.app.gateway.cache.drain()
                assert store_errors() >= errors + 2 and store_up() == 0
                down = [r for r in caplog.records if "unavailable" in r.getMessage()]
                assert len(down) == 1 and down[0].levelno == logging.ERROR  # logged once

                server.start()
                await asyncio.sleep(1.1)
                assert await ask(gw, after) == "miss"
                await gw.app.gateway.cache.drain()
            assert store_up() == 1 and any("is back" in r.getMessage() for r in caplog.records)
            assert await entries(server) == 1  # the restart lost the old data; the new answer is stored
        upstream_calls = len(openai_fake.requests)
        async with running_gateway(config) as other:  # a second gateway sharing the Redis
            assert await ask(other, after) == "hit-exact"
        assert len(openai_fake.requests) == upstream_calls
    finally:
        server.destroy()
