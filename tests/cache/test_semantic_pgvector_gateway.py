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
            return proxy_config(openai_fake.base_url, anthropic_fake.base_url) + f"""
cache:
  exact: {{path: "{tmp_path / "cache.db"}"}}
  semantic: {{enabled: true, store: pgvector, postgres_url: "${{TOKENOMY_TEST_SEMANTIC_PG}}"}}
ledger: {{path: "{tmp_path / name}", flush_interval_ms: 20}}
"""

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
