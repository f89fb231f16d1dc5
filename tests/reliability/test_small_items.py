"""The smaller audit findings (finding 8): every request in the ledger, streams that end without a
finish reason, /metrics behind a key, and admin cache invalidation's tenant parameter.

As found: ``/metrics`` answered without a key when keys were on; shed 503s and unhandled 500s
had no ledger row though the docs say every request has one; a stream ending with ``[DONE]``
but no finish reason was recorded as a clean 200; ``DELETE /v1/cache?tenant=`` took any value.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from tests.budgets.helpers import ADMIN_KEY, admin_headers, gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.keys.record import hash_key

KEY = "sk-small-items"
KEYS = [{"name": "small", "sha256": hash_key(KEY)}]
AUTH = {"authorization": f"Bearer {KEY}"}
BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _rows(path: Path) -> list[tuple[int, str | None]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT status, error_type FROM requests ORDER BY ts").fetchall()
    finally:
        conn.close()


async def test_metrics_need_a_key_when_keys_are_on(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS)
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        anonymous = await http.get("/metrics")
        client_key = await http.get("/metrics", headers=AUTH)
        admin = await http.get("/metrics", headers=admin_headers())
    assert anonymous.status_code == 401 and client_key.status_code == 401
    assert admin.status_code == 200 and "tokenomy_" in admin.text
    no_admin = gateway_config(openai_fake.base_url, tmp_path / "b", keys=KEYS, admin=False)
    async with running_gateway(no_admin) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        refused = await http.get("/metrics", headers=AUTH)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "metrics_key_not_configured"


async def test_shed_requests_have_rows(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS).replace(
        "auth:", "server: {max_in_flight: 1}\nauth:", 1
    )
    openai_fake.mode, openai_fake.delay = "slow", 0.5
    try:
        async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            import asyncio

            answers = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=BODY, headers=AUTH) for _ in range(5))
            )
            await gw.flush_ledger()
    finally:
        openai_fake.delay = 5.0
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(503) >= 1
    assert sorted(status for status, _ in _rows(tmp_path / "ledger.db")) == statuses


async def test_a_stream_without_a_finish_reason_is_not_a_clean_200(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS)
    openai_fake.mode = "no_finish_reason"
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        resp = await http.post("/v1/chat/completions", json={**BODY, "stream": True}, headers=AUTH)
        await gw.flush_ledger()
    assert resp.status_code == 200  # the stream had begun: the failure is an error event
    assert '"error"' in resp.text
    assert _rows(tmp_path / "ledger.db") == [(502, "upstream_error")]


async def test_cache_invalidation_validates_the_tenant(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS)
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        bad = await http.delete("/v1/cache", params={"tenant": "a/../b"}, headers=admin_headers())
        good = await http.delete("/v1/cache", params={"tenant": "team-a"}, headers=admin_headers(ADMIN_KEY))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tenant"
    assert good.status_code in (200, 503)  # 503: no level-2 store in this config
