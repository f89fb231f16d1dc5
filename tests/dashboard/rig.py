"""A gateway with an admin key and two tenant keys, and traffic through it (hostile task and model names
included) for the dashboard tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml
from tests.budgets.helpers import ADMIN_KEY, admin_headers, gateway_config
from tests.fakes.openai_upstream import start_openai_fake
from tests.support.gateway import RunningGateway, running_gateway

HOSTILE_TASK = '<img src=x onerror="window.__xss=1">'
HOSTILE_MODEL = "</script><script>window.__xss=2</script>"


@dataclass
class Rig:
    """The running gateway, its config file (for the CLI) and the tenants' keys."""

    gw: RunningGateway
    config: Path
    keys: dict[str, str]  # tenant -> secret
    ids: dict[str, list[str]]  # tenant -> request ids it made
    admin: str = ADMIN_KEY


async def call(
    gw: RunningGateway, path: str, key: str | None, method: str = "GET", body: Any = None
) -> tuple[int, Any]:
    """One HTTP call; JSON bodies parsed, others returned as text."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http, http.request(method, gw.url + path, headers=headers, json=body) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()


@asynccontextmanager
async def dashboard_rig(home: Path) -> AsyncIterator[Rig]:
    """Start everything, send the traffic, flush the ledger."""
    fake = await start_openai_fake()
    config_text = gateway_config(fake.base_url, home)
    config = yaml.safe_load(config_text)
    config["ledger"]["store_prompts"] = True
    config_text = yaml.safe_dump(config)
    path = home / "tokenomy.yaml"
    path.write_text(config_text)
    try:
        async with running_gateway(config_text) as gw:
            keys: dict[str, str] = {}
            for team in ("red", "blue"):
                status, made = await call(gw, "/admin/keys", ADMIN_KEY, "POST", {"name": f"{team}-app", "team": team})
                assert status == 201, made
                keys[team] = made["key"]
            ids: dict[str, list[str]] = {"red": [], "blue": []}
            plan = [("red", "summarize", "fast")] * 6 + [("blue", HOSTILE_TASK, "cheap")] * 4
            for i, (team, task, model) in enumerate(plan):
                client = openai.AsyncOpenAI(base_url=gw.v1, api_key=keys[team], max_retries=0)
                async with client:
                    raw = await client.chat.completions.with_raw_response.create(
                        model=model,
                        messages=[{"role": "user", "content": f"question {i} about the {team} quarterly numbers"}],
                        extra_headers={"x-tokenomy-task": task},
                    )
                ids[team].append(raw.headers["x-request-id"])
                await asyncio.sleep(0.02)
            blue = openai.AsyncOpenAI(base_url=gw.v1, api_key=keys["blue"], max_retries=0)
            async with blue:
                try:
                    await blue.chat.completions.create(model=HOSTILE_MODEL, messages=[{"role": "user", "content": "x"}])
                except openai.NotFoundError as exc:
                    ids["blue"].append(exc.response.headers["x-request-id"])
            await gw.flush_ledger()
            yield Rig(gw, path, keys, ids)
    finally:
        await fake.close()


__all__ = ["ADMIN_KEY", "HOSTILE_MODEL", "HOSTILE_TASK", "Rig", "admin_headers", "call", "dashboard_rig"]
