"""A request that fails after admission settles its reservation and gets a ledger row (finding 4).

As found: a ~1 KB request with a field nested 300 deep passed admission (the JSON parser takes
1,024 levels), then failed with 500 when serialized for the upstream (orjson writes at most
254); the record stage caught only gateway errors, so the request had no ledger row and its
reservation was never released, and after the reservation TTL the budget counted its estimate
as spend for a call that never happened.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.budgets.helpers import gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.keys.record import hash_key
from tokenomy.server.schemas import SERIALIZER_DEPTH, parse_json

KEY = "sk-depth"
KEYS = [{"name": "depth", "sha256": hash_key(KEY), "budget": {"usd_per_day": 5.0}}]
AUTH = {"authorization": f"Bearer {KEY}"}


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_body(depth: int) -> dict[str, Any]:
    return {
        "model": "fast",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "metadata_blob": nested(depth),  # an unknown field: passed through to the upstream
    }


async def _budget(gw: RunningGateway) -> tuple[float, float]:
    service = gw.app.gateway.access.budgets
    assert service is not None
    await service.drain()
    status = await service.status(await gw.app.gateway.access.keys.list())
    day = next(s for s in status if s["period"] == "day")
    return day["spent_usd"], day["reserved_usd"]


def _rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT status, error_type, cost_usd FROM requests").fetchall()
    finally:
        conn.close()


async def test_a_deeply_nested_request_is_refused_up_front_and_recorded(
    openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS, admin=False)
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        raw = json.dumps(deep_body(300), separators=(",", ":")).encode()  # orjson cannot write it
        assert len(raw) < 2_000
        resp = await http.post(
            "/v1/chat/completions", content=raw, headers={**AUTH, "content-type": "application/json"}
        )
        await gw.flush_ledger()
        spent, reserved = await _budget(gw)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "json_too_deep"
    assert _rows(tmp_path / "ledger.db") == [(400, "invalid_request_error", 0.0)]
    assert (spent, reserved) == (0.0, 0.0)
    assert not openai_fake.requests, "nothing was sent upstream"


async def test_an_unexpected_failure_after_admission_settles_at_zero_and_is_recorded(
    openai_fake: OpenAIFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS, admin=False)
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        provider = gw.app.gateway.providers["openai"]

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug after admission")

        monkeypatch.setattr(provider, "send", broken)
        resp = await http.post("/v1/chat/completions", json=deep_body(3), headers=AUTH)
        await gw.flush_ledger()
        spent, reserved = await _budget(gw)
    assert resp.status_code == 500
    assert resp.json()["error"]["type"] == "server_error"
    assert _rows(tmp_path / "ledger.db") == [(500, "server_error", 0.0)]
    assert (spent, reserved) == (0.0, 0.0), "the reservation is released, nothing is billed"


def test_whatever_the_parser_accepts_the_serializer_can_write() -> None:
    """The deepest body the configuration allows (200) still serializes, wrapped in a few more levels."""
    limit = 200
    assert limit + 10 < SERIALIZER_DEPTH
    data = parse_json(orjson.dumps({"blob": nested(limit - 2)}), max_depth=limit)
    orjson.dumps({"wrapper": {"request": data}})  # what a provider adds around the body
    with pytest.raises(Exception, match="deeper than 200"):
        parse_json(orjson.dumps({"blob": nested(limit)}), max_depth=limit)
