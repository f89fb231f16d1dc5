"""``tokenomy keys create|list|revoke`` against a running gateway's admin API."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner, Result
from tests.budgets.helpers import ADMIN_KEY, gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.cli import main


async def _cli(*args: str, admin_key: str | None = ADMIN_KEY) -> Result:
    env = {"TOKENOMY_ADMIN_KEY": admin_key}
    return await asyncio.to_thread(CliRunner().invoke, main, ["keys", *args], env=env)


async def test_create_list_revoke(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    async with running_gateway(gateway_config(openai_fake.base_url, tmp_path)) as gw:
        url = ["--url", gw.url]
        made = await _cli("create", "batch", "--team", "data", "--model", "cheap", "--rpm", "5", *url)
        assert made.exit_code == 0, made.output
        key_id = re.search(r"created (key_\w+)", made.output).group(1)  # type: ignore[union-attr]
        secret = re.search(r"key: (tk-\S+)", made.output).group(1)  # type: ignore[union-attr]

        client = openai.AsyncOpenAI(base_url=gw.v1, api_key=secret, max_retries=0)
        reply = await client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "echo: x"

        listed = await _cli("list", *url)
        line = next(line for line in listed.output.splitlines() if line.startswith(key_id))
        assert line.split() == [key_id, "batch", "data", "cheap", "5", "-", "-", "active"]

        budget = await _cli("create", "nightly", "--usd-per-day", "2", "--downgrade-to", "cheap", "--json", *url)
        assert budget.exit_code == 0 and '"action": "soft"' in budget.output

        assert (await _cli("revoke", key_id, *url)).exit_code == 0
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "x"}])
        listed = await _cli("list", "--all", *url)
        assert "revoked" in next(line for line in listed.output.splitlines() if line.startswith(key_id))
        await client.close()


async def test_errors_are_clear(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    async with running_gateway(gateway_config(openai_fake.base_url, tmp_path)) as gw:
        url = ["--url", gw.url]
        no_key = await _cli("list", *url, admin_key=None)
        assert no_key.exit_code == 1 and "set TOKENOMY_ADMIN_KEY" in no_key.output
        wrong = await _cli("list", *url, admin_key="wrong")
        assert wrong.exit_code == 1 and "401: Incorrect admin key provided." in wrong.output
        bad_model = await _cli("create", "x", "--model", "gpt-9", *url)
        assert bad_model.exit_code == 1 and "unknown model 'gpt-9'" in bad_model.output
        unknown = await _cli("revoke", "key_nope", *url)
        assert unknown.exit_code == 1 and "404: no key with id 'key_nope'" in unknown.output
        orphan = await _cli("create", "x", "--downgrade-to", "cheap", *url)
        assert orphan.exit_code == 2 and "--downgrade-to needs a budget" in orphan.output
    down = await _cli("list", "--url", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "cannot reach the gateway" in down.output
