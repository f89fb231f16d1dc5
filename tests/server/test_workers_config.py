"""Which configurations ``serve --workers`` accepts, and its default number of workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenomy.config import load_config, parse_config
from tokenomy.config.budgets import KeyBudget
from tokenomy.keys.record import KeyRecord
from tokenomy.keys.store_sqlite import SqliteKeyStore
from tokenomy.server import workers

REMOTE = """
models:
  - name: fast
    deployments: [{provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${K:-x}", model: gpt-4o-mini}]
"""


def test_default_is_the_usable_cores_but_one_with_embedded_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    assert workers.default_workers(parse_config(REMOTE)) == 3
    assert workers.default_workers(load_config(None)) == 1  # the embedded default: local models


def test_state_that_would_be_per_worker_is_refused() -> None:
    assert workers.shared_state_problems(parse_config(REMOTE)) == []
    budgets = REMOTE + "budgets: {rules: [{scope: team, name: '*', usd_per_day: 5}]}\n"
    [problem] = workers.shared_state_problems(parse_config(budgets))
    assert "budgets.store: redis" in problem
    redis = budgets.replace("budgets: {", "budgets: {store: redis, redis_url: '${R:-redis://127.0.0.1:1}', ")
    assert workers.shared_state_problems(parse_config(redis)) == []
    rated = REMOTE + "auth: {keys: [{name: ci, sha256: '" + "a" * 64 + "', rpm: 5, tpm: 900}]}\n"
    assert workers.shared_state_problems(parse_config(rated)) == []  # rate limits: the workers' shared memory
    budgeted = rated.replace("tpm: 900", "budget: {usd_per_day: 1}")
    assert "budgets.store: redis" in workers.shared_state_problems(parse_config(budgeted))[0]
    semantic = REMOTE + "cache: {semantic: {enabled: true}}\n"
    assert "semantic" in workers.shared_state_problems(parse_config(semantic))[0]
    shared = REMOTE + "cache: {semantic: {enabled: true, store: pgvector, postgres_url: '${P:-postgresql://x}'}}\n"
    assert workers.shared_state_problems(parse_config(shared)) == []  # one tier in PostgreSQL for all workers
    audited = shared.replace("store: pgvector", "store: pgvector, audit_share: 0.1")
    assert "audit" in workers.shared_state_problems(parse_config(audited))[0]
    thread = REMOTE + "ledger: {writer: thread}\n"
    assert "writer" in workers.shared_state_problems(parse_config(thread))[0]


async def test_an_admin_key_needs_redis_budgets_only_once_a_stored_key_carries_a_budget(tmp_path: Path) -> None:
    admin = REMOTE + f"auth: {{admin_key: '${{A:-x}}', key_store: {{path: '{tmp_path / 'keys.db'}'}}}}\n"
    assert workers.shared_state_problems(parse_config(admin)) == []  # no keys yet: rate limits only
    store = SqliteKeyStore(tmp_path / "keys.db")
    await store.open()
    await store.add(KeyRecord(id="key_1", name="ci", rpm=5), "a" * 64)
    assert workers.shared_state_problems(parse_config(admin)) == []
    await store.add(KeyRecord(id="key_2", name="team-x", budget=KeyBudget(usd_per_day=1)), "b" * 64)
    [problem] = workers.shared_state_problems(parse_config(admin))
    assert "team-x" in problem and "budgets.store: redis" in problem
    await store.revoke("key_2", 1.0)
    assert workers.shared_state_problems(parse_config(admin)) == []
    await store.close()
    in_redis = admin.replace("key_store: {", "key_store: {store: redis, redis_url: '${R:-redis://127.0.0.1:1}', ")
    assert "Redis" in workers.shared_state_problems(parse_config(in_redis))[0]
