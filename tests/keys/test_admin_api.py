"""The admin API through a real gateway: auth errors, bad input, create -> use -> revoke -> 401."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from tests.budgets.helpers import ADMIN_KEY, admin_headers, gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.redis import RedisServer

from tokenomy.keys.record import hash_key

CONFIG_KEY = "sk-config-key"


@pytest.fixture(scope="module", params=["sqlite", "redis"])
async def gateway(
    request: pytest.FixtureRequest, openai_fake: OpenAIFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    tmp_path = tmp_path_factory.mktemp("admin")
    store: dict[str, Any] = {"path": str(tmp_path / "keys.db")}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        store = {"store": "redis", "redis_url": f"${{T_NO_SUCH_URL:-{server.url}}}"}
    keys = [{"name": "from-config", "sha256": hash_key(CONFIG_KEY)}]
    async with running_gateway(gateway_config(openai_fake.base_url, tmp_path, keys=keys, key_store=store)) as gw:
        yield gw


async def _call(
    gw: RunningGateway, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, gw.url + path, headers=headers, json=body) as resp,
    ):
        return resp.status, await resp.json()


async def _chat(gw: RunningGateway, key: str) -> str:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=0)
    async with client:
        reply = await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    return reply.choices[0].message.content or ""


async def test_create_use_revoke(gateway: RunningGateway) -> None:
    status, created = await _call(
        gateway, "POST", "/admin/keys", admin_headers(), {"name": "ci", "team": "platform", "models": ["fast"]}
    )
    assert status == 201, created
    secret = created["key"]
    assert secret.startswith("tk-") and len(secret) > 40 and created["team"] == "platform"
    assert created["hint"] == secret[:7] + "…"
    assert await _chat(gateway, secret) == "echo: hi"

    status, listed = await _call(gateway, "GET", "/admin/keys", admin_headers())
    names = {k["name"]: k for k in listed["data"]}
    assert status == 200 and {"from-config", "ci"} <= set(names)
    assert names["from-config"]["source"] == "config" and names["ci"]["source"] == "store"
    assert secret not in str(listed) and hash_key(secret) not in str(listed)  # never the key nor its hash

    status, revoked = await _call(gateway, "DELETE", f"/admin/keys/{created['id']}", admin_headers())
    assert status == 200 and revoked["revoked"] is not None
    with pytest.raises(openai.AuthenticationError) as info:
        await _chat(gateway, secret)
    assert info.value.status_code == 401
    assert await _chat(gateway, CONFIG_KEY) == "echo: hi"  # config keys keep working

    _, listed = await _call(gateway, "GET", "/admin/keys", admin_headers())
    assert "ci" not in {k["name"] for k in listed["data"]}
    _, listed = await _call(gateway, "GET", "/admin/keys?include_revoked=true", admin_headers())
    assert "ci" in {k["name"] for k in listed["data"]}
    status, again = await _call(gateway, "POST", "/admin/keys", admin_headers(), {"name": "ci"})
    assert status == 201 and again["id"] != created["id"]  # a revoked key's name can be reused


async def test_the_store_keeps_only_hashes(gateway: RunningGateway) -> None:
    _, created = await _call(gateway, "POST", "/admin/keys", admin_headers(), {"name": "secret-check"})
    store = gateway.app.gateway.access.keys.store
    db = getattr(store, "path", None)
    if db is not None:  # the SQLite store (for Redis: the listing never shows the hash, above)
        raw = await asyncio.to_thread(lambda: db.read_bytes() + Path(f"{db}-wal").read_bytes())
        assert created["key"].encode() not in raw and hash_key(created["key"]).encode() in raw


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "invalid_api_key"),
        ({"authorization": "Bearer nope"}, 401, "invalid_api_key"),
        ({"authorization": f"Bearer {CONFIG_KEY}"}, 403, "admin_key_required"),
    ],
)
async def test_admin_auth_errors(gateway: RunningGateway, headers: dict[str, str], status: int, code: str) -> None:
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys"), ("DELETE", "/admin/keys/x")):
        got, body = await _call(gateway, method, path, headers, {"name": "x"} if method == "POST" else None)
        assert (got, body["error"]["code"]) == (status, code), (method, path, body)


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "name", "name: Field required"),
        ({"name": ""}, "name", "name: String should have at least 1 character"),
        ({"name": "x", "rpm": 0}, "rpm", "rpm: Input should be greater than 0"),
        ({"name": "x", "models": ["gpt-9"]}, "models", "unknown model 'gpt-9'"),
        ({"name": "x", "colour": "red"}, "colour", "colour: Extra inputs are not permitted"),
        ({"name": "x", "budget": {"usd_per_day": 1, "action": "soft"}}, "budget", "a soft budget needs downgrade_to"),
        ({"name": "x", "budget": {"action": "hard"}}, "budget", "needs usd_per_day, usd_per_month or both"),
        ({"name": "x", "budget": {"usd_per_day": 1, "action": "soft", "downgrade_to": "gpt-9"}}, "models", "gpt-9"),
        ({"name": "from-config"}, "name", "already exists"),
    ],
)
async def test_bad_key_specs_are_named(gateway: RunningGateway, body: dict[str, Any], param: str, words: str) -> None:
    status, answer = await _call(gateway, "POST", "/admin/keys", admin_headers(), body)
    error = answer["error"]
    assert status in (400, 409) and words in error["message"], error
    assert error["param"] == param


async def test_unknown_and_config_ids(gateway: RunningGateway) -> None:
    status, body = await _call(gateway, "DELETE", "/admin/keys/key_nope", admin_headers())
    assert (status, body["error"]["code"]) == (404, "key_not_found")
    status, body = await _call(gateway, "DELETE", "/admin/keys/config:from-config", admin_headers())
    assert status == 400 and "config file" in body["error"]["message"]
    status, body = await _call(gateway, "GET", "/admin/keys?colour=red", admin_headers())
    assert status == 400 and "colour" in body["error"]["message"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(gateway.url + "/admin/keys", data=b"{not json", headers=admin_headers()) as resp,
    ):
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"


async def test_admin_api_is_off_without_an_admin_key(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    async with running_gateway(gateway_config(openai_fake.base_url, tmp_path, admin=False)) as gw:
        status, body = await _call(gw, "GET", "/admin/keys", admin_headers(ADMIN_KEY))
        assert (status, body["error"]["code"]) == (403, "admin_key_not_configured")
        assert await _chat(gw, "anything") == "echo: hi"  # no keys, no admin key: still open
