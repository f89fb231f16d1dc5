"""The smaller audit findings (finding 8): every request in the ledger, streams that end without a
finish reason, /metrics behind a key, and admin cache invalidation's tenant parameter.

As found: ``/metrics`` answered without a key when keys were on; shed 503s and unhandled 500s
had no ledger row though the docs say every request has one; a stream ending with ``[DONE]``
but no finish reason was recorded as a clean 200; ``DELETE /v1/cache?tenant=`` took any value.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.budgets.helpers import ADMIN_KEY, admin_headers, gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.keys.record import hash_key
from tokenomy.server import openai_routes

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
        models = [await http.get(path) for path in ("/v1/models", "/v1/models/fast")]
        models_with_key = await http.get("/v1/models", headers=AUTH)
    assert anonymous.status_code == 401 and client_key.status_code == 401
    assert admin.status_code == 200 and "tokenomy_" in admin.text
    assert [m.status_code for m in models] == [401, 401], "the model list needs a key too"
    assert models_with_key.status_code == 200 and "fast" in models_with_key.text
    metrics_key = gateway_config(openai_fake.base_url, tmp_path / "c", keys=KEYS, admin=False).replace(
        "auth:", 'server: {metrics_key: "${T_UNSET_METRICS_KEY:-sk-metrics-reader-1}"}\nauth:', 1
    )
    async with running_gateway(metrics_key) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        reader = await http.get("/metrics", headers={"authorization": "Bearer sk-metrics-reader-1"})
        client = await http.get("/metrics", headers=AUTH)
    assert reader.status_code == 200 and client.status_code == 401
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
            answers = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=BODY, headers=AUTH) for _ in range(5))
            )
            await gw.flush_ledger()
    finally:
        openai_fake.delay = 5.0
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(503) >= 1
    assert sorted(status for status, _ in _rows(tmp_path / "ledger.db")) == statuses


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for series, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE):
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


async def test_sheds_are_counted_exactly_when_their_rows_are_sampled(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    """Past ``server.edge_rows_per_s`` a shed gets no row of its own, but every one is counted."""
    config = gateway_config(openai_fake.base_url, tmp_path, keys=[], admin=False).replace(
        "auth:", "server: {max_in_flight: 1, edge_rows_per_s: 1}\nauth:", 1
    )
    openai_fake.mode, openai_fake.delay = "slow", 1.0
    try:
        async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            before = (await http.get("/metrics")).text
            started = time.monotonic()
            answers = await asyncio.gather(*(http.post("/v1/chat/completions", json=BODY) for _ in range(30)))
            elapsed = time.monotonic() - started
            await gw.flush_ledger()
            after = (await http.get("/metrics")).text
    finally:
        openai_fake.delay = 5.0
    shed = sum(1 for a in answers if a.status_code == 503)
    refused = _counter(after, "tokenomy_edge_refusals_total") - _counter(before, "tokenomy_edge_refusals_total")
    skipped = _counter(after, "tokenomy_edge_rows_skipped_total") - _counter(before, "tokenomy_edge_rows_skipped_total")
    rows = [status for status, _ in _rows(tmp_path / "ledger.db")]
    assert shed >= 20 and shed + rows.count(200) == 30
    assert refused == shed, "every shed request is counted"
    assert rows.count(503) + skipped == shed, "each has a row or is counted as having none"
    assert 1 <= rows.count(503) <= 1 + elapsed, "rows are sampled at edge_rows_per_s (1 a second, a burst of 1)"


async def test_requests_refused_at_the_edge_have_rows(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    """No key, a body too large, a body too slow, a body that is not JSON: each answered and recorded."""
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS).replace(
        "auth:", "server: {max_body_bytes: 2048, body_timeout_s: 0.5}\nauth:", 1
    )
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        no_key = await http.post("/v1/chat/completions", json=BODY)
        large = await http.post("/v1/chat/completions", json={**BODY, "user": "x" * 4096}, headers=AUTH)
        not_json = await http.post("/v1/chat/completions", content=b"{nope", headers=AUTH)
        host, port = gw.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 500\r\nauthorization: Bearer " + KEY.encode() + b"\r\n\r\n{"
        )
        slow = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await gw.flush_ledger()
    assert (no_key.status_code, large.status_code, not_json.status_code) == (401, 413, 400)
    assert slow.startswith(b"HTTP/1.1 408")
    assert sorted(status for status, _ in _rows(tmp_path / "ledger.db")) == [400, 401, 408, 413]


async def test_an_unhandled_error_before_the_pipeline_has_a_row(
    openai_fake: OpenAIFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug while reading the request")

    monkeypatch.setattr(openai_routes.schemas, "read_json", broken)
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS)
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        resp = await http.post("/v1/chat/completions", json=BODY, headers=AUTH)
        await gw.flush_ledger()
    assert resp.status_code == 500 and resp.json()["error"]["type"] == "server_error"
    assert "a bug" not in resp.text, "no internal detail reaches the client"
    assert _rows(tmp_path / "ledger.db") == [(500, "server_error")]


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
        bad = [
            await http.delete("/v1/cache", params={"tenant": tenant}, headers=admin_headers())
            for tenant in ("a/../b", "team-a/", "team\x00a", "t" * 129)
        ]
        good = await http.delete("/v1/cache", params={"tenant": "team-a"}, headers=admin_headers(ADMIN_KEY))
    for resp in bad:
        assert resp.status_code == 400 and resp.json()["error"]["param"] == "tenant", resp.text
    assert good.status_code in (200, 503)  # 503: no level-2 store in this config
