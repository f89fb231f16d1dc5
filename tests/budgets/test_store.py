"""Budget counters, in process and in a real Redis: check-and-reserve is atomic, settle is exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from tests.support.redis import RedisServer

from tokenomy.budgets.periods import period_of
from tokenomy.budgets.store import BudgetStore, Counter, MemoryBudgetStore
from tokenomy.budgets.store_redis import RedisBudgetStore


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[BudgetStore]:
    if request.param == "memory":
        yield MemoryBudgetStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis_store = RedisBudgetStore(server.url, reservation_ttl_s=60)
    await redis_store.open()
    yield redis_store
    await redis_store.close()


def _counter(hard: float | None = None, soft: float | None = None, target: str | None = None) -> Counter:
    name = uuid.uuid4().hex[:8]  # a fresh counter per test (the Redis server is shared)
    pid, resets = period_of("day", 1.7e9)
    return Counter(f"key:{name}:{pid}", f"key {name!r}", "day", resets + 1e9, hard, soft, target)


async def test_hard_limit_counts_reservations_and_spend(store: BudgetStore) -> None:
    c = _counter(hard=1.0)
    assert (await store.reserve([c], 0.4, "a", True)).status == "ok"
    assert (await store.reserve([c], 0.4, "b", True)).status == "ok"
    refused = await store.reserve([c], 0.4, "c", True)  # 0.8 reserved + 0.4 > 1.0
    assert (refused.status, refused.index) == ("hard", 0)
    assert refused.reserved == pytest.approx(0.8) and refused.spent == 0.0
    await store.settle([c], 0.4, 0.1, "a")
    assert await store.read([c.key]) == [(pytest.approx(0.1), pytest.approx(0.4))]
    assert (await store.reserve([c], 0.4, "c", True)).status == "ok"  # 0.1 + 0.8 + ... fits now


async def test_settle_releases_once_and_always_adds_the_actual_cost(store: BudgetStore) -> None:
    c = _counter(hard=1.0)
    await store.reserve([c], 0.5, "a", True)
    await store.settle([c], 0.5, 0.2, "a")
    await store.settle([c], 0.5, 0.2, "a")  # a duplicate must not release the reservation twice
    assert await store.read([c.key]) == [(pytest.approx(0.4), pytest.approx(0.0))]


async def test_all_or_nothing_across_counters(store: BudgetStore) -> None:
    roomy, tight = _counter(hard=10.0), _counter(hard=0.1)
    verdict = await store.reserve([roomy, tight], 0.2, "a", True)
    assert (verdict.status, verdict.index) == ("hard", 1)
    assert await store.read([roomy.key, tight.key]) == [(0.0, 0.0), (0.0, 0.0)]


async def test_soft_limit_is_reported_unless_told_to_reserve_anyway(store: BudgetStore) -> None:
    soft, hard = _counter(soft=0.1, target="cheap"), _counter(hard=0.15)
    verdict = await store.reserve([soft, hard], 0.2, "a", True)
    assert verdict.status == "hard"  # hard limits win over soft ones
    verdict = await store.reserve([soft], 0.2, "a", True)
    assert (verdict.status, verdict.index) == ("soft", 0)
    assert (await store.reserve([soft], 0.2, "a", False)).status == "ok"
    assert await store.read([soft.key]) == [(0.0, pytest.approx(0.2))]


async def test_concurrent_reservations_never_pass_the_limit(store: BudgetStore) -> None:
    c = _counter(hard=1.0)
    verdicts = await asyncio.gather(*(store.reserve([c], 0.03, f"r{i}", True) for i in range(200)))
    admitted = sum(v.status == "ok" for v in verdicts)
    assert admitted == 33  # floor(1.0 / 0.03): exactly, not more
    spent, reserved = (await store.read([c.key]))[0]
    assert spent == 0.0 and reserved == pytest.approx(0.99)


async def test_redis_releases_reservations_a_dead_gateway_never_settled(redis_server: RedisServer) -> None:
    dead, alive = RedisBudgetStore(redis_server.url, 0.05), RedisBudgetStore(redis_server.url, 60)
    c = _counter(hard=1.0)
    try:
        assert (await dead.reserve([c], 0.9, "lost", True)).status == "ok"
        assert (await alive.reserve([c], 0.5, "x", True)).status == "hard"
        await asyncio.sleep(0.1)
        assert (await alive.reserve([c], 0.5, "x", True)).status == "ok"  # the stale 0.9 was reaped first
        assert await alive.read([c.key]) == [(0.0, pytest.approx(0.5))]
        await dead.settle([c], 0.9, 0.0, "lost")  # a late settlement does not release twice
        assert await alive.read([c.key]) == [(0.0, pytest.approx(0.5))]
    finally:
        await dead.close()
        await alive.close()


def test_periods_reset_at_utc_midnight_and_month_start() -> None:
    assert period_of("day", 1735689599.0) == ("d2024-12-31", 1735689600.0)  # 2024-12-31T23:59:59Z
    assert period_of("month", 1735689599.0) == ("m2024-12", 1735689600.0)
    assert period_of("month", 1735689600.0)[0] == "m2025-01"
