"""200 concurrent requests against a hard budget: the budget holds, in process and in Redis.

The bound, from the reservation design: a request is admitted only if ``spent + reserved +
estimate <= limit`` (atomically), and it holds its estimate until it settles at its actual cost.
So at any time ``spent + reserved <= limit + sum(max(0, actual_i - estimate_i))`` over settled
requests; with ``max_tokens`` set, every estimate is an upper bound of the actual cost and the
bound is exactly ``total spend <= limit``. Conversely a request is refused only when ``spent +
reserved > limit - estimate``, so at least ``(limit - max_estimate) / max_estimate`` requests get
through. Without the reservation every one of the 200 would pass the check (all arrive before
the first finishes) and spend ~4.4 times the limit.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.budgets.helpers import gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.redis import RedisServer

from tokenomy.keys.record import hash_key
from tokenomy.pipeline.context import CallContext, Endpoint

N = 200
LIMIT = 0.5  # USD; each request reserves ~$0.026 and costs ~$0.011
KEY = "sk-race"


def _body(i: int) -> dict[str, Any]:
    return {"model": "fast", "messages": [{"role": "user", "content": f"request number {i}"}], "max_tokens": 8}


async def _race(gw: RunningGateway) -> tuple[int, int]:
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=N + 50, max_keepalive_connections=N + 50))
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key=KEY, max_retries=0, http_client=http, timeout=60)

    async def one(i: int) -> str:
        try:
            await client.chat.completions.create(**_body(i))
        except openai.RateLimitError as exc:
            return str(exc.code)
        return "ok"

    async with client:
        outcomes = await asyncio.gather(*(one(i) for i in range(N)))
    assert set(outcomes) <= {"ok", "budget_exceeded"}, set(outcomes)
    return outcomes.count("ok"), outcomes.count("budget_exceeded")


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_budget_holds_under_200_concurrent_requests(
    store: str, request: pytest.FixtureRequest, openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    budgets: dict[str, Any] = {}
    if store == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        budgets = {"store": "redis", "redis_url": f"${{T_NO_SUCH_URL:-{server.url}}}"}
    name = f"race-{uuid.uuid4().hex[:8]}"  # fresh counters in the shared Redis
    keys = [{"name": name, "sha256": hash_key(KEY), "budget": {"usd_per_day": LIMIT}}]
    config = gateway_config(openai_fake.base_url, tmp_path, keys=keys, budgets=budgets, admin=False)
    openai_fake.mode, openai_fake.delay = "slow", 0.5  # every request is in flight at once
    try:
        async with running_gateway(config) as gw:
            admitted, refused = await _race(gw)
            service = gw.app.gateway.access.budgets
            assert service is not None
            await service.drain()
            await gw.flush_ledger()
            status = await service.status(await gw.app.gateway.access.keys.list())
            estimates = [service.cost.estimate(_ctx(i), "fast").usd for i in range(N)]
    finally:
        openai_fake.delay = 5.0

    conn = sqlite3.connect(tmp_path / "ledger.db")
    rows = conn.execute("SELECT status, cost_usd FROM requests").fetchall()
    conn.close()
    costs = [cost for status, cost in rows if status == 200]
    spend = sum(costs)
    assert len(rows) == N and len(costs) == admitted and admitted + refused == N

    # every estimate bounds every actual cost, so the excess term of the bound is 0: spend <= limit
    assert max(costs) <= min(estimates)
    assert spend <= LIMIT + 1e-9, f"overspent: ${spend:.4f} of ${LIMIT}"
    assert refused > 0 and admitted >= math.floor((LIMIT - max(estimates)) / max(estimates))
    # the counters agree with the ledger, and nothing stays reserved
    day = next(s for s in status if s["period"] == "day")
    assert day["spent_usd"] == pytest.approx(spend) and day["reserved_usd"] == pytest.approx(0.0, abs=1e-9)


def _ctx(i: int) -> CallContext:
    body = _body(i)
    return CallContext(request_id=f"r{i}", endpoint=Endpoint.CHAT, body=body, model="fast")
