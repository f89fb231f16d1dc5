"""Memory and disk stay bounded (finding 7).

As found: cached answers cost ~1.7x the bytes the level-1 limit counted; the level-2 SQLite
cache had no size bound (~0.95 KB per distinct answer, kept 24 h); per-task budget counters grew
with every task tag a client invented. The level-1 count against what the tier holds after its
entries turn over (where 1.3x remained): tests/cache/test_memory.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import yaml
from tests.budgets.helpers import gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.cache.entry import CacheEntry
from tokenomy.cache.memory import MemoryTier
from tokenomy.cache.stores.base import EntryMeta
from tokenomy.cache.stores.sqlite import SqliteCacheStore


def test_level_1_counts_the_real_allocation_of_orjson_bodies() -> None:
    """orjson's output can sit in a 4 KB allocation: the tier keeps an exact-size copy."""
    import sys

    tier = MemoryTier(10**9)
    now = time.time()
    body = orjson.dumps({"choices": [{"message": {"content": "short answer"}}]})
    tier.put("k", CacheEntry(body, now, now + 60, "m", "t", "n"))
    stored = tier.get("k", now, None)
    assert stored is not None and stored.body == body
    assert sys.getsizeof(stored.body) <= len(body) + 64
    assert tier.bytes_used >= len(body) + 400  # key, entry object and LRU bookkeeping are counted


async def test_the_sqlite_store_stays_under_its_bound(tmp_path: Path) -> None:
    bound = 2 * 1024 * 1024
    store = SqliteCacheStore(tmp_path / "cache.db", max_bytes=bound)
    value = b"v" * 1000
    try:
        for i in range(6000):  # ~6 MB of distinct answers
            meta = EntryMeta(namespace="t/a/", model="m", task="t", expires=time.time() + 3600 + i)
            await store.set(f"key-{i}", value, meta)
        used = await asyncio.get_running_loop().run_in_executor(store._pool, store.bytes_used)
        assert used <= bound + 1024 * 1024, f"{used} bytes in use against a {bound} bound"
        assert await store.get("key-5999") is not None, "the newest answers are kept"
        assert await store.get("key-0") is None, "the oldest were evicted"
    finally:
        await store.close()
    assert (tmp_path / "cache.db").stat().st_size <= bound * 2


async def test_the_gateways_level_2_file_stays_under_its_bound(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    """Through a gateway, where level-2 entries are written by the ledger writer process (as found,
    that path never evicted: the bound applied only to entries written one at a time)."""
    bound = 1024 * 1024
    config = yaml.safe_load(gateway_config(openai_fake.base_url, tmp_path, admin=False))
    config["cache"] = {"exact": {"max_store_bytes": bound, "path": str(tmp_path / "cache.db"), "memory_bytes": 0}}
    async with running_gateway(yaml.safe_dump(config)) as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        for i in range(150):  # ~20 KB answers (the fake echoes the prompt): ~3 MB of distinct answers
            prompt = f"request {i}: " + " ".join(f"word{j}" for j in range(2500))
            body = {"model": "fast", "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
            assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
        await gw.flush_ledger()  # the writer has stored (and evicted) everything sent so far
    store = SqliteCacheStore(tmp_path / "cache.db")
    try:
        used = await asyncio.get_running_loop().run_in_executor(store._pool, store.bytes_used)
        rows = await asyncio.get_running_loop().run_in_executor(
            store._pool, lambda: store._conn().execute("SELECT count(*) FROM cache").fetchone()[0]
        )
    finally:
        await store.close()
    assert used <= bound * 1.1, f"{used} bytes in use against a {bound} bound"
    assert 20 <= rows < 100, f"{rows} entries kept: the oldest were evicted, the newest kept"


def test_wildcard_budget_counters_are_bounded() -> None:
    """Task tags a client invents fold into one shared ``other`` budget past the limit."""
    from tokenomy.budgets.cost import CostModel
    from tokenomy.budgets.service import BudgetService
    from tokenomy.config import parse_config
    from tokenomy.config.budgets import BudgetsConfig
    from tokenomy.pipeline.context import CallContext, Endpoint
    from tokenomy.pipeline.route import ModelTable
    from tokenomy.pricing.prices import PriceBook

    config = parse_config(
        "models: [{name: m, deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: x}]}]"
    )
    rules = {"rules": [{"scope": "task", "name": "*", "usd_per_day": 1.0}], "max_wildcard_subjects": 10}
    budgets = BudgetsConfig.model_validate(rules)
    service = BudgetService(budgets, CostModel(ModelTable(config), PriceBook(), 16, None))
    keys = set()
    for i in range(5000):
        ctx = CallContext(request_id="r", endpoint=Endpoint.CHAT, body={}, model="m", task=f"tag-{i}")
        keys |= {c.key for c in service.counters(None, ctx)}
    assert len(keys) <= 11, len(keys)
    assert any(":other:" in k for k in keys)


async def test_tasks_past_the_limit_share_one_other_budget(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    """Through a gateway: a ``task: "*"`` rule gives the first tasks budgets of their own; every task a
    client invents after them draws on one shared ``other`` budget, which runs out for all of them."""
    rules = [{"scope": "task", "name": "*", "usd_per_day": 0.04}]  # room for 3 requests of "hi" each
    config = gateway_config(
        openai_fake.base_url, tmp_path, admin=False, budgets={"rules": rules, "max_wildcard_subjects": 2}
    )
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:

        async def ask(task: str) -> int:
            resp = await http.post("/v1/chat/completions", json=body, headers={"x-tokenomy-task": task})
            if resp.status_code == 429:
                assert resp.json()["error"]["code"] == "budget_exceeded"
            return resp.status_code

        own = [await ask(task) for task in ("a", "b")]
        invented = [await ask(f"invented-{i}") for i in range(6)]
        again = await ask("a")
    assert own == [200, 200]
    assert invented == [200, 200, 200, 429, 429, 429], "new tasks past the limit share one budget"
    assert again == 200, "a task counted apart keeps its own budget"
