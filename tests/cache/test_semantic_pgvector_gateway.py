"""Two gateways sharing one semantic tier in PostgreSQL with pgvector, and that tier going down."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cache.test_semantic_gateway import ask, user
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway
from tests.support.postgres import PostgresServer


async def test_gateways_share_the_tier_and_an_outage_only_makes_misses(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, pgvector_server: PostgresServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with pgvector_server.database() as dsn:
        monkeypatch.setenv("TOKENOMY_TEST_SEMANTIC_PG", dsn)

        def config(name: str) -> str:  # one exact tier (the SQLite file), one semantic tier (PostgreSQL)
            return (
                proxy_config(openai_fake.base_url, anthropic_fake.base_url)
                + f"""
cache:
  exact: {{path: "{tmp_path / "cache.db"}"}}
  semantic: {{enabled: true, store: pgvector, postgres_url: "${{TOKENOMY_TEST_SEMANTIC_PG}}"}}
ledger: {{path: "{tmp_path / name}", flush_interval_ms: 20}}
"""
            )

        async with running_gateway(config("a.db")) as one, running_gateway(config("b.db")) as two:
            before = len(openai_fake.requests)
            first, h1 = await ask(one, user("What is the capital city of Portugal?"))
            second, h2 = await ask(two, user("capital city of portugal"))
            assert h1["x-tokenomy-cache"] == "miss" and h2["x-tokenomy-cache"] == "hit-semantic"
            assert second == first and len(openai_fake.requests) == before + 1
            pgvector_server.stop()
            try:
                _, h3 = await ask(two, user("capital city of portugal, please"))
                _, h4 = await ask(two, user("What is the tallest mountain in Spain?"))
            finally:
                pgvector_server.start()
            assert h3["x-tokenomy-cache"] == "miss" and h4["x-tokenomy-cache"] == "miss"
            assert len(openai_fake.requests) == before + 3  # both answered upstream


async def test_unset_store_url_turns_only_the_semantic_tier_off(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.delenv("TOKENOMY_TEST_UNSET_PG", raising=False)
    config = (
        proxy_config(openai_fake.base_url, anthropic_fake.base_url)
        + f"""
cache:
  exact: {{path: "{tmp_path / "cache.db"}"}}
  semantic: {{enabled: true, store: pgvector, postgres_url: "${{TOKENOMY_TEST_UNSET_PG}}"}}
ledger: {{path: "{tmp_path / "ledger.db"}", flush_interval_ms: 20}}
"""
    )
    async with running_gateway(config) as running:
        before = len(openai_fake.requests)
        _, first = await ask(running, user("Capital of Chile?"))
        _, again = await ask(running, user("Capital of Chile?"))
        _, para = await ask(running, user("capital of chile"))
        assert [first["x-tokenomy-cache"], again["x-tokenomy-cache"], para["x-tokenomy-cache"]] == [
            "miss", "hit-exact", "miss"
        ]  # fmt: skip
        assert len(openai_fake.requests) == before + 2 and running.app.gateway.semantic.off
    assert any("semantic cache off" in r.getMessage() and "TOKENOMY_TEST_UNSET_PG" in r.getMessage()
               for r in caplog.records)  # fmt: skip
