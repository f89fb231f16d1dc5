"""Hard budgets hold against any request (finding 2).

As found: the reservation counted only message text, so ``tools``, ``response_format`` schemas
and image parts reserved nothing; 200 concurrent requests against a $0.50 hard budget spent
$22.50 with a 40 KB ``tools`` array and $8.31 with four image parts. Now every billable part is
estimated as an upper bound (``n`` answers of ``max_tokens`` each included), and a request with no
bound is refused under a hard budget.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.budgets.helpers import gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.budgets.parts import billable_parts
from tokenomy.keys.record import hash_key
from tokenomy.pipeline.context import CallContext, Endpoint

N = 200
LIMIT = 0.5
KEY = "sk-estimates"
PRICE = {"input_per_mtok": 2.5, "output_per_mtok": 10.0}  # gpt-4o's list price
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def _tools() -> list[dict[str, Any]]:
    """A ~40 KB tools array (80 functions with documented parameters)."""
    props = {f"field_{j}": {"type": "string", "description": f"The value of field number {j} of the record."}
             for j in range(8)}  # fmt: skip
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "Look something up in the company's records and return it as JSON. " * 2,
                "parameters": {"type": "object", "properties": props, "required": list(props)},
            },
        }
        for i in range(40)
    ]


def _body(kind: str, i: int) -> dict[str, Any]:
    text = {"type": "text", "text": f"request {i}: what is in these pictures?"}
    content: Any = {
        "tools": f"request number {i}",
        "images": [text, IMAGE, IMAGE, IMAGE, IMAGE],
        "n": f"request number {i}: say all of these words back to me",  # 8 words of answer per choice
    }[kind]
    body: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": content}], "max_tokens": 8}
    if kind == "tools":
        body["tools"] = _tools()
    if kind == "n":  # 64 answers of max_tokens each: billed 64x
        body["n"] = 64
    return body


def _config(openai_url: str, home: Path, budget: dict[str, Any] | None) -> str:
    keys = [{"name": "est", "sha256": hash_key(KEY), **({"budget": budget} if budget else {})}]
    config = yaml.safe_load(gateway_config(openai_url, home, keys=keys, admin=False))
    dep = config["models"][0]["deployments"][0]
    dep["model"], dep["pricing"] = "gpt-4o", PRICE  # tile-priced images: 1,445 tokens at most
    return yaml.safe_dump(config)


async def _race(gw: RunningGateway, kind: str) -> list[int]:
    limits = httpx.Limits(max_connections=N + 50, max_keepalive_connections=N + 50)
    async with httpx.AsyncClient(base_url=gw.url, limits=limits, timeout=60) as http:
        answers = await asyncio.gather(
            *(
                http.post("/v1/chat/completions", json=_body(kind, i), headers={"authorization": f"Bearer {KEY}"})
                for i in range(N)
            )
        )
    return [a.status_code for a in answers]


@pytest.mark.parametrize("kind", ["tools", "images", "n"])
async def test_200_concurrent_requests_do_not_overspend(kind: str, openai_fake: OpenAIFake, tmp_path: Path) -> None:
    assert len(str(_tools())) > 40_000
    openai_fake.mode, openai_fake.delay = "slow", 0.5  # every request is in flight at once
    try:
        async with running_gateway(_config(openai_fake.base_url, tmp_path, {"usd_per_day": LIMIT})) as gw:
            statuses = await _race(gw, kind)
            service = gw.app.gateway.access.budgets
            assert service is not None
            await service.drain()
            await gw.flush_ledger()
            ctx = CallContext(request_id="r", endpoint=Endpoint.CHAT, body=_body(kind, 0), model="fast")
            estimate = service.cost.estimate(ctx, "fast").usd
    finally:
        openai_fake.delay = 5.0
    conn = sqlite3.connect(tmp_path / "ledger.db")
    costs = [c for (c,) in conn.execute("SELECT cost_usd FROM requests WHERE status = 200")]
    conn.close()
    assert set(statuses) <= {200, 429} and statuses.count(200) == len(costs)
    assert costs and max(costs) <= estimate, "the estimate is an upper bound of what the provider billed"
    assert sum(costs) <= LIMIT + 1e-9, f"{kind}: spent ${sum(costs):.4f} against a ${LIMIT} hard budget"
    assert statuses.count(200) >= int(LIMIT / estimate) - 1


async def test_a_request_without_max_tokens_is_refused_only_under_a_hard_budget(
    openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}
    auth = {"authorization": f"Bearer {KEY}"}
    for budget, expected in (
        ({"usd_per_day": LIMIT}, 400),
        (None, 200),
        ({"usd_per_day": LIMIT, "action": "soft", "downgrade_to": "cheap"}, 200),
    ):
        home = tmp_path / str(expected) / str(bool(budget))
        async with (
            running_gateway(_config(openai_fake.base_url, home, budget)) as gw,
            httpx.AsyncClient(base_url=gw.url) as http,
        ):
            resp = await http.post("/v1/chat/completions", json=body, headers=auth)
            bounded = await http.post("/v1/chat/completions", json={**body, "max_tokens": 5}, headers=auth)
        assert resp.status_code == expected, (budget, resp.text)
        assert bounded.status_code == 200
        if expected == 400:
            assert resp.json()["error"]["code"] == "max_tokens_required"


def test_billable_parts_bound_each_kind() -> None:
    encode = len  # one token per character: enough to see each part counted
    parts = billable_parts(
        {
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "messages": [
                {"role": "user", "content": [IMAGE, {"type": "image_url", "image_url": {"url": "u", "detail": "low"}}]},
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "A" * 4000}}]},
                {"role": "user", "content": [{"type": "file", "file": {"file_data": "B" * 100}}]},
            ],
        },
        encode,
    )
    assert (parts.tools, parts.images, parts.low_images, parts.file_tokens) == (1, 1, 1, 100)
    assert parts.schema_tokens > 50 and parts.premium_tokens >= 30 and parts.bounded
    by_id = billable_parts(
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}]}, encode
    )
    assert not by_id.bounded
