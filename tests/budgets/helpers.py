"""Gateway configs for the key and budget tests: two priced models on the fake OpenAI upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ADMIN_KEY = "admin-secret-for-tests"
# USD per token: fast 0.001 in / 0.002 out, cheap ten times less.
FAST_PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
CHEAP_PRICE = {"input_per_mtok": 100.0, "output_per_mtok": 200.0}


def gateway_config(
    openai_url: str,
    home: Path,
    *,
    keys: list[dict[str, Any]] | None = None,
    budgets: dict[str, Any] | None = None,
    key_store: dict[str, Any] | None = None,
    admin: bool = True,
) -> str:
    """YAML for a gateway with models ``fast`` and ``cheap``, the ledger in ``home``, no cache."""
    upstream = {"provider": "openai", "base_url": openai_url, "api_key": "${T_OPENAI_KEY:-sk-fake-openai}"}
    auth: dict[str, Any] = {"keys": keys or []}
    if admin:
        auth["admin_key"] = f"${{T_NO_SUCH_ADMIN_KEY:-{ADMIN_KEY}}}"
        auth["key_store"] = key_store or {"path": str(home / "keys.db")}
    config = {
        "auth": auth,
        "ledger": {"path": str(home / "ledger.db"), "flush_interval_ms": 20},
        "cache": {"exact": {"enabled": False}},
        "budgets": budgets or {},
        "models": [
            {"name": "fast", "deployments": [{**upstream, "model": "gpt-4o-mini", "pricing": FAST_PRICE}]},
            {
                "name": "cheap",
                "deployments": [{**upstream, "model": "gpt-4o-mini", "name": "cheap-dep", "pricing": CHEAP_PRICE}],
            },
        ],
    }
    return yaml.safe_dump(config)


def admin_headers(key: str = ADMIN_KEY) -> dict[str, str]:
    """The admin API's authorization header."""
    return {"authorization": f"Bearer {key}"}
