"""The Responses API state stores (SQLite and a real Redis): tenants kept apart, deletion, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.postgres import PostgresServer
from tests.support.redis import RedisServer

from tokenomy.state.responses import (
    PostgresResponseStore,
    RedisResponseStore,
    ResponseStore,
    ResponseStoreUnavailable,
    SqliteResponseStore,
)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    made: list[ResponseStore] = []

    def build(retention_s: float = 60.0) -> ResponseStore:
        if request.param == "sqlite":
            store: ResponseStore = SqliteResponseStore(tmp_path / f"r{len(made)}.db", retention_s)
        elif request.param == "redis":
            server: RedisServer = request.getfixturevalue("redis_server")
            store = RedisResponseStore(server.url, retention_s)
        else:
            postgres: PostgresServer = request.getfixturevalue("postgres_server")
            store = PostgresResponseStore(postgres.create_database(), retention_s)
        made.append(store)
        return store

    yield build
    for store in made:
        await store.close()


async def test_round_trip_tenants_and_delete(make: object) -> None:
    store = make()  # type: ignore[operator]
    response = {"id": "resp_1", "object": "response", "output": []}
    await store.put("team-a", response, [{"id": "msg_1", "type": "message"}])
    found = await store.get("team-a", "resp_1")
    assert found is not None and found.response == response and found.items[0]["id"] == "msg_1" and not found.expired
    assert await store.get("team-b", "resp_1") is None  # another tenant's id is unknown
    assert await store.get("team-a", "resp_2") is None
    assert not await store.delete("team-b", "resp_1")
    assert await store.delete("team-a", "resp_1")
    assert await store.get("team-a", "resp_1") is None


async def test_expired_is_reported(make: object) -> None:
    store = make(retention_s=0.05)  # type: ignore[operator]
    await store.put("t", {"id": "resp_old"}, [])
    await asyncio.sleep(0.1)
    found = await store.get("t", "resp_old")
    assert found is not None and found.expired


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_a_store_that_is_down_is_unavailable(kind: str) -> None:
    store: ResponseStore = (
        RedisResponseStore("redis://127.0.0.1:1/0", 60)
        if kind == "redis"
        else PostgresResponseStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", 60)
    )
    with pytest.raises(ResponseStoreUnavailable):
        await store.get("t", "resp_x")
    await store.close()
