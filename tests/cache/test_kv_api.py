"""The cache API (``/v1/cache``) through a real gateway, and its service against a real store."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.cache.kv import KvService
from tokenomy.cache.stores.sqlite import SqliteCacheStore
from tokenomy.errors import GatewayError

MAX = 4096
AUTH = """
auth:
  admin_key: "${T_ADMIN:-sk-admin}"
  keys:
    - {name: alice, key: "${T_ALICE:-sk-alice}", tenant: team-a}
    - {name: bob, key: "${T_BOB:-sk-bob}", tenant: team-b}
"""


def config(fakes: tuple[OpenAIFake, AnthropicFake], home: Path, auth: str = AUTH, store: str = "sqlite") -> str:
    return (
        proxy_config(fakes[0].base_url, fakes[1].base_url)
        + auth
        + f"""
cache:
  exact: {{path: "{home / "cache.db"}", max_entry_bytes: {MAX}, store: {store}}}
  shared_namespaces: [public]
ledger: {{enabled: false}}
"""
    )


@pytest.fixture(scope="module")
def fakes(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> tuple[OpenAIFake, AnthropicFake]:
    return openai_fake, anthropic_fake


@pytest.fixture(scope="module")
async def gw(
    fakes: tuple[OpenAIFake, AnthropicFake], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config(fakes, tmp_path_factory.mktemp("kv"))) as running:
        yield running


def http(gw: RunningGateway, key: str | None = "sk-alice") -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=f"{gw.v1}/cache", headers=headers)


def error(resp: httpx.Response) -> dict[str, str]:
    body = resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}  # the OpenAI error object
    return dict(body["error"])


def name() -> str:
    return uuid.uuid4().hex[:12]


async def test_put_get_delete(gw: RunningGateway) -> None:
    key = name()
    async with http(gw) as c:
        miss = await c.get(f"/steps/{key}")
        assert miss.status_code == 404 and miss.headers["x-tokenomy-cache"] == "miss"
        assert error(miss)["code"] == "cache_miss"
        put = await c.put(f"/steps/{key}", content=b"\x00\x01 result", headers={"content-type": "application/x-thing"})
        assert put.status_code == 200 and put.json()["bytes"] == 9
        hit = await c.get(f"/steps/{key}")
        assert hit.status_code == 200 and hit.content == b"\x00\x01 result"
        assert hit.headers["content-type"] == "application/x-thing" and hit.headers["x-tokenomy-cache"] == "hit"
        assert 86_000 < int(hit.headers["x-tokenomy-ttl"]) <= 86_400  # the configured default TTL
        await c.put(f"/steps/{key}", content=b"second")  # overwrite; no content-type: octet-stream
        again = await c.get(f"/steps/{key}")
        assert again.content == b"second" and again.headers["content-type"] == "application/octet-stream"
        assert (await c.delete(f"/steps/{key}")).status_code == 204
        assert (await c.delete(f"/steps/{key}")).status_code == 204  # idempotent
        assert (await c.get(f"/steps/{key}")).status_code == 404


async def test_ttl_from_query_or_header_and_its_bounds(gw: RunningGateway) -> None:
    a, b = name(), name()
    async with http(gw) as c:
        assert (await c.put(f"/steps/{a}", content=b"x", params={"ttl": "0.3"})).status_code == 200
        assert (await c.put(f"/steps/{b}", content=b"y", headers={"x-tokenomy-ttl": "0.3"})).status_code == 200
        assert (await c.get(f"/steps/{a}")).status_code == 200
        await asyncio.sleep(0.45)
        assert (await c.get(f"/steps/{a}")).status_code == 404
        assert (await c.get(f"/steps/{b}")).status_code == 404
        for bad in ("0", "-1", "abc", "nan", "1e12"):
            resp = await c.put(f"/steps/{a}", content=b"x", params={"ttl": bad})
            assert resp.status_code == 400 and error(resp)["param"] == "ttl", bad


async def test_tenants_are_isolated_unless_the_namespace_is_shared(gw: RunningGateway) -> None:
    key = name()
    async with http(gw, "sk-alice") as alice, http(gw, "sk-bob") as bob:
        await alice.put(f"/notes/{key}", content=b"alice's")
        assert (await bob.get(f"/notes/{key}")).status_code == 404
        await bob.put(f"/notes/{key}", content=b"bob's")
        assert (await alice.get(f"/notes/{key}")).content == b"alice's"
        assert (await bob.get(f"/notes/{key}")).content == b"bob's"
        await bob.delete(f"/notes/{key}")
        assert (await alice.get(f"/notes/{key}")).content == b"alice's"  # bob deleted only his own
        await alice.put(f"/public/{key}", content=b"for everyone")
        assert (await bob.get(f"/public/{key}")).content == b"for everyone"


async def test_authentication(gw: RunningGateway) -> None:
    async with http(gw, None) as anonymous, http(gw, "sk-wrong") as wrong:
        for resp in (await anonymous.get("/steps/k"), await wrong.put("/steps/k", content=b"x")):
            assert resp.status_code == 401 and error(resp)["type"] == "authentication_error"


async def test_bad_names_and_paths(gw: RunningGateway) -> None:
    async with http(gw) as c:
        for path in ("/bad%20ns/k", "/ns/bad!key", f"/ns/{'k' * 257}", f"/{'n' * 129}/k"):
            resp = await c.put(path, content=b"x")
            assert resp.status_code == 400 and error(resp)["code"] == "invalid_cache_name", path
        assert (await c.put(f"/ns/{'k' * 256}", content=b"x")).status_code == 200
        for path in ("/ns", "/ns/", "/ns/a/b"):
            assert (await c.get(path)).status_code == 404, path
        assert (await c.post("/ns/k", content=b"x")).status_code == 405


async def test_oversized_values_are_refused(gw: RunningGateway) -> None:
    async with http(gw) as c:
        assert (await c.put("/ns/fits", content=b"x" * MAX)).status_code == 200
        resp = await c.put("/ns/too-big", content=b"x" * (MAX + 1))
        assert resp.status_code == 413 and error(resp)["code"] == "cache_value_too_large"


async def test_admin_invalidation(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    admin = httpx.AsyncClient(base_url=gw.v1, headers={"authorization": "Bearer sk-admin"})
    async with admin, http(gw, "sk-alice") as alice, http(gw, "sk-bob") as bob, http(gw, None) as anonymous:
        missing = await anonymous.delete(f"{gw.v1}/cache", params={"model": "fast"})
        assert missing.status_code == 401 and error(missing)["type"] == "authentication_error"
        wrong = await bob.delete(f"{gw.v1}/cache", params={"model": "fast"})
        assert wrong.status_code == 403 and error(wrong)["type"] == "permission_error"
        for params in ({}, {"modle": "fast"}, {"namespace": "notes"}):
            assert (await admin.delete("/cache", params=params)).status_code == 400, params

        key = name()
        await alice.put(f"/inv/{key}", content=b"a")
        await bob.put(f"/inv/{key}", content=b"b")
        resp = await admin.delete("/cache", params={"tenant": "team-a", "namespace": "inv"})
        assert resp.status_code == 200 and resp.json() == {"deleted": 1}
        assert (await alice.get(f"/inv/{key}")).status_code == 404 and (await bob.get(f"/inv/{key}")).content == b"b"

        # model answers: a cached chat answer is gone after invalidating its model
        chat = openai.AsyncOpenAI(base_url=gw.v1, api_key="sk-alice", max_retries=0)
        messages: Any = [{"role": "user", "content": f"q {name()}"}]

        async def ask() -> str:
            raw = await chat.chat.completions.with_raw_response.create(model="fast", messages=messages, temperature=0)
            return raw.headers["x-tokenomy-cache"]

        assert [await ask(), await ask()] == ["miss", "hit-exact"]
        await gw.app.gateway.cache.drain()
        resp = await admin.delete("/cache", params={"model": "fast"})
        assert resp.status_code == 200 and resp.json()["deleted"] >= 1
        assert await ask() == "miss"
        resp = await admin.delete("/cache", params={"task": "kv"})  # every intermediate result
        assert resp.json()["deleted"] >= 1 and (await bob.get(f"/inv/{key}")).status_code == 404


async def test_open_gateway_uses_the_default_tenant_and_has_no_admin(
    fakes: tuple[OpenAIFake, AnthropicFake], tmp_path: Path
) -> None:
    async with running_gateway(config(fakes, tmp_path, auth="")) as open_gw, http(open_gw, None) as c:
        await c.put("/ns/k", content=b"v")
        assert (await c.get("/ns/k")).content == b"v"
        assert open_gw.app.gateway.cache_store is not None
        assert await open_gw.app.gateway.cache_store.get("kv/t/default/ns/k") is not None
        resp = await c.delete(f"{open_gw.v1}/cache", params={"all": "true"}, headers={"authorization": "Bearer x"})
        assert resp.status_code == 403 and "TOKENOMY_ADMIN_KEY" in error(resp)["message"]


async def test_no_store_answers_503(fakes: tuple[OpenAIFake, AnthropicFake], tmp_path: Path) -> None:
    async with running_gateway(config(fakes, tmp_path, store="none")) as bare, http(bare) as c:
        resp = await c.put("/ns/k", content=b"v")
        assert resp.status_code == 503 and "cache.exact.store" in error(resp)["message"]
        assert (await c.get("/ns/k")).status_code == 503


async def test_service_limits_and_corrupt_values(tmp_path: Path) -> None:
    store = SqliteCacheStore(tmp_path / "c.db")
    kv = KvService(store, shared_namespaces=("pub",), max_value_bytes=10)
    try:
        await kv.put("t1", "ns", "k", b"0123456789", 60, "text/plain")
        item = await kv.get("t1", "ns", "k")
        assert item is not None and (item.value, item.content_type) == (b"0123456789", "text/plain")
        assert await kv.get("t2", "ns", "k") is None
        with pytest.raises(GatewayError) as info:
            await kv.put("t1", "ns", "k", b"01234567890")
        assert info.value.status == 413
        conn = sqlite3.connect(tmp_path / "c.db")
        conn.execute("UPDATE cache SET value = substr(value, 1, length(value) - 1)")  # truncate
        conn.commit()
        conn.close()
        assert await kv.get("t1", "ns", "k") is None
        await asyncio.sleep(0.05)
        conn = sqlite3.connect(tmp_path / "c.db")
        assert conn.execute("SELECT count(*) FROM cache").fetchone() == (0,)  # the corrupt value was deleted
        conn.close()
    finally:
        await store.close()
