"""Clients cannot erase or hijack ledger rows (audit finding 3).

As found: the client's ``x-request-id`` was the ledger's primary key and duplicates were
dropped, so one id reused for 20 paid requests left 1 row; and the gateway's own ids were a
process prefix plus a counter, so one tenant could pre-claim another tenant's next ids.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import httpx
from tests.budgets.helpers import gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.keys.record import hash_key

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
KEYS = [
    {"name": "alice", "sha256": hash_key("sk-alice"), "tenant": "team-a"},
    {"name": "mallory", "sha256": hash_key("sk-mallory"), "tenant": "team-m"},
]


def _rows(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


async def test_a_reused_client_id_keeps_every_row_and_is_echoed(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS, admin=False)
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        headers = {"authorization": "Bearer sk-mallory", "x-request-id": "same-id"}
        answers = [await http.post("/v1/chat/completions", json=BODY, headers=headers) for _ in range(20)]
        await gw.flush_ledger()
    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["x-request-id"] for a in answers} == {"same-id"}  # echoed back
    gateway_ids = {a.headers["x-tokenomy-request-id"] for a in answers}
    assert len(gateway_ids) == 20
    sql = "SELECT request_id, tenant FROM requests WHERE client_request_id = ?"
    rows = _rows(tmp_path / "ledger.db", sql, "same-id")
    assert len(rows) == 20, "every paid request keeps its own row"
    assert {r[0] for r in rows} == gateway_ids and {r[1] for r in rows} == {"team-m"}


async def test_one_tenant_cannot_claim_another_tenants_ids(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, keys=KEYS, admin=False)
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        mallory = {"authorization": "Bearer sk-mallory"}
        seen = (await http.post("/v1/chat/completions", json=BODY, headers=mallory)).headers["x-request-id"]
        # as found, ids were a fixed prefix and a hex counter: claim the next 40
        match = re.fullmatch(r"(.*?)([0-9a-f]{8})", seen)
        guesses = [f"{match.group(1)}{int(match.group(2), 16) + i:08x}" for i in range(1, 41)] if match else []
        guesses += [seen]
        await asyncio.gather(
            *(http.post("/v1/chat/completions", json=BODY, headers={**mallory, "x-request-id": g}) for g in guesses)
        )
        alice = {"authorization": "Bearer sk-alice"}
        answers = [await http.post("/v1/chat/completions", json=BODY, headers=alice) for _ in range(40)]
        await gw.flush_ledger()
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(a.status_code == 200 for a in answers)
    rows = _rows(tmp_path / "ledger.db", "SELECT request_id FROM requests WHERE tenant = 'team-a'")
    assert sorted(r[0] for r in rows) == sorted(ids), "every one of alice's requests has its own row"
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids), ids[:3]
    total = _rows(tmp_path / "ledger.db", "SELECT count(*) FROM requests")[0][0]
    assert total == 1 + len(guesses) + 40
