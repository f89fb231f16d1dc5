"""Budgets and per-key limits through a real gateway: hard 429, soft downgrade, RPM, scopes, settlement."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from tests.budgets.helpers import admin_headers, gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.redis import RedisServer

from tokenomy.keys.record import hash_key
from tokenomy.pipeline.record import RecordStage
from tokenomy.telemetry.metrics import REGISTRY

KEY = "sk-budget-test"
HI = [{"role": "user", "content": "hi"}]
# "hi" with max_tokens=10 on ``fast``: reserved (8 counted prompt tokens + 10) -> $0.028; the fake
# upstream reports 1 prompt + 2 completion tokens -> $0.005 actually spent.
EST, COST = 0.028, 0.005


def _key(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "team-key", "sha256": hash_key(KEY), "tenant": "research", **fields}]


def _client(gw: RunningGateway, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=2)


def _ledger(home: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(home / "ledger.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM requests ORDER BY ts").fetchall()
    finally:
        conn.close()


async def test_hard_budget_answers_429_budget_exceeded(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=_key(budget={"usd_per_day": 0.04}))
    async with running_gateway(config) as gw, _client(gw) as client:
        for _ in range(3):  # 0.000 / 0.005 / 0.010 spent + 0.028 reserved <= 0.04
            await client.chat.completions.create(model="fast", messages=HI, max_tokens=10)
        with pytest.raises(openai.RateLimitError) as info:  # 0.015 + 0.028 > 0.04
            await client.chat.completions.create(model="fast", messages=HI, max_tokens=10)
        error = info.value
        assert error.code == "budget_exceeded" and error.type == "budget_exceeded"
        message = error.message
        assert "key 'team-key' has spent $0.0150 of its $0.0400 daily budget" in message, message
        assert "this request may cost up to $0.0280" in message and "T00:00:00Z" in message
        assert error.response.headers["x-should-retry"] == "false"
        assert len(openai_fake.requests) == 3  # the SDK did not retry, nothing reached the upstream
        await gw.flush_ledger()
        rows = _ledger(tmp_path)
        assert [r["status"] for r in rows] == [200, 200, 200, 429]
        assert rows[-1]["error_type"] == "budget_exceeded"
        assert sum(r["cost_usd"] for r in rows) == pytest.approx(3 * COST)


async def test_soft_budget_downgrades_and_the_ledger_shows_it(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    budget = {"usd_per_day": 0.04, "action": "soft", "downgrade_to": "cheap"}
    config = gateway_config(openai_fake.base_url, tmp_path, keys=_key(budget=budget))
    labels = {"model": "fast", "downgraded_to": "cheap"}
    before = REGISTRY.get_sample_value("tokenomy_budget_downgrades_total", labels) or 0.0
    async with running_gateway(config) as gw, _client(gw) as client:
        served = []
        for _ in range(5):
            raw = await client.chat.completions.with_raw_response.create(model="fast", messages=HI, max_tokens=10)
            served.append(raw.headers["x-tokenomy-model"])
        assert served == ["fast", "fast", "fast", "cheap", "cheap"]
        stream = await client.chat.completions.create(
            model="fast", messages=HI, max_tokens=10, stream=True, stream_options={"include_usage": True}
        )
        async for _chunk in stream:
            pass
        await gw.flush_ledger()
    after = REGISTRY.get_sample_value("tokenomy_budget_downgrades_total", labels) or 0.0
    assert after - before == 3
    rows = _ledger(tmp_path)
    assert [(r["requested_model"], r["served_model"]) for r in rows[2:]] == [("fast", "fast")] + [("fast", "cheap")] * 3
    assert rows[3]["route"].startswith("budget-downgrade:fast->cheap")
    assert rows[3]["cost_usd"] == pytest.approx(COST / 10)
    assert rows[3]["baseline_cost_usd"] == pytest.approx(COST)  # priced against the requested model
    assert rows[3]["saved_routing_usd"] == pytest.approx(COST - COST / 10)


@pytest.fixture(params=["memory", "redis"])
def limits_store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Where per-key buckets live; keys get fresh names since the Redis server is shared."""
    if request.param == "memory":
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"store": "redis", "redis_url": f"${{T_NO_SUCH_URL:-{server.url}}}"}


def _fresh_key(**fields: Any) -> list[dict[str, Any]]:
    return [{**_key(**fields)[0], "name": f"limited-{uuid.uuid4().hex[:8]}"}]


async def test_key_rpm_limit(openai_fake: OpenAIFake, tmp_path: Path, limits_store: dict[str, Any]) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=_fresh_key(rpm=2), budgets=limits_store)
    async with running_gateway(config) as gw, _client(gw) as client:
        await client.chat.completions.create(model="fast", messages=HI)
        await client.chat.completions.create(model="fast", messages=HI)
        with pytest.raises(openai.RateLimitError) as info:
            await client.with_options(max_retries=0).chat.completions.create(model="fast", messages=HI)
        assert info.value.code == "rate_limit_exceeded" and info.value.type == "requests"
        assert "2 requests per minute" in info.value.message
        assert int(info.value.response.headers["retry-after"]) in range(1, 31)


async def test_key_tpm_limit_settles_to_the_tokens_used(
    openai_fake: OpenAIFake, tmp_path: Path, limits_store: dict[str, Any]
) -> None:
    # each "hi" takes its 8 counted prompt tokens up front; the upstream reports 3 in all: 5 come back
    config = gateway_config(openai_fake.base_url, tmp_path, keys=_fresh_key(tpm=20), budgets=limits_store)
    async with running_gateway(config) as gw, _client(gw) as client:
        outcomes = []
        for _ in range(6):
            try:
                await client.with_options(max_retries=0).chat.completions.create(model="fast", messages=HI)
                outcomes.append(200)
            except openai.RateLimitError as exc:
                assert exc.code == "rate_limit_exceeded" and "20 tokens per minute" in exc.message
                outcomes.append(429)
            await gw.app.gateway.access.budgets.drain()  # type: ignore[union-attr]
        assert outcomes == [200] * 5 + [429]  # 5 x 3 used: 5 left < 8 (without the give-back: 2 pass)


async def test_task_and_team_rules_on_an_open_gateway(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    rules = [
        {"scope": "task", "name": "*", "usd_per_day": 0.04},  # every task its own budget
        {"scope": "team", "name": "default", "usd_per_month": 0.045},
    ]
    config = gateway_config(openai_fake.base_url, tmp_path, admin=False, budgets={"rules": rules})
    async with running_gateway(config) as gw, _client(gw, "anything") as client:

        async def ask(task: str) -> int:
            try:
                await client.with_options(max_retries=0).chat.completions.create(
                    model="fast", messages=HI, max_tokens=10, extra_headers={"x-tokenomy-task": task}
                )
            except openai.RateLimitError as exc:
                assert exc.code == "budget_exceeded"
                return 429
            return 200

        assert [await ask("a") for _ in range(4)] == [200, 200, 200, 429]  # task a: 0.015 + 0.028 > 0.04
        # task b has room of its own, but the team's monthly budget is at 0.015: room for 1 more
        assert [await ask("b") for _ in range(2)] == [200, 429]
        async with aiohttp.ClientSession() as http, http.get(gw.url + "/admin/budgets", headers=admin_headers()) as r:
            assert r.status == 403  # admin API off here: read the service directly instead
        status = await gw.app.gateway.access.budgets.status([])  # type: ignore[union-attr]
        team = next(s for s in status if s["counter"].startswith("team:default:m"))
        assert team["spent_usd"] == pytest.approx(4 * COST) and team["reserved_usd"] == 0.0


async def test_admin_budgets_report(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=_key(budget={"usd_per_day": 1, "usd_per_month": 5}))
    async with running_gateway(config) as gw, _client(gw) as client:
        await client.chat.completions.create(model="fast", messages=HI, max_tokens=10)
        async with aiohttp.ClientSession() as http, http.get(gw.url + "/admin/budgets", headers=admin_headers()) as r:
            data = (await r.json())["data"]
    assert {(d["period"], d["hard_limit_usd"]) for d in data} == {("day", 1.0), ("month", 5.0)}
    assert all(d["spent_usd"] == pytest.approx(COST) and d["reserved_usd"] == 0.0 for d in data)


async def test_nothing_extra_on_the_request_path_without_budgets(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    async with running_gateway(gateway_config(openai_fake.base_url, tmp_path, admin=False)) as gw:
        gateway = gw.app.gateway
        assert gateway.access.budgets is None
        recorder = next(s for s in gateway.stages if isinstance(s, RecordStage))
        assert recorder._sink is gateway.ledger  # no settling wrapper


async def test_budgets_fail_closed_when_redis_is_down(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    server = RedisServer()  # its own: this test stops it
    server.start()
    try:
        budgets = {"store": "redis", "redis_url": f"${{T_NO_SUCH_URL:-{server.url}}}"}
        config = gateway_config(openai_fake.base_url, tmp_path, keys=_key(budget={"usd_per_day": 1}), budgets=budgets)
        async with running_gateway(config) as gw, _client(gw) as client:
            await client.chat.completions.create(model="fast", messages=HI, max_tokens=10)
            await asyncio.to_thread(server.stop)
            with pytest.raises(openai.InternalServerError) as info:
                await client.with_options(max_retries=0).chat.completions.create(
                    model="fast", messages=HI, max_tokens=10
                )
            assert info.value.status_code == 503 and info.value.code == "budget_store_down"
            assert "The budget store is unavailable" in info.value.message
    finally:
        await asyncio.to_thread(server.destroy)
