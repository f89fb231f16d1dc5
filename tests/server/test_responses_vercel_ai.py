"""The Vercel AI SDK's default OpenAI provider (``openai(model)``: the Responses API) as the caller,
on a native and a translated model (Node, with the packages pinned in tests/js/package-lock.json)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

JS = Path(__file__).parents[1] / "js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


@pytest.fixture(scope="module")
async def gw(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> AsyncIterator[RunningGateway]:
    assert (JS / "node_modules" / "ai").exists(), "run scripts/install-test-servers.sh (npm ci in tests/js)"
    config = f"""
models:
  - name: native
    deployments: [{{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_K:-{OPENAI_KEY}}}",
                   model: gpt-4o-mini}}]
  - name: claude
    deployments: [{{provider: anthropic, base_url: "{anthropic_fake.base_url}", api_key: "${{T_A:-{ANTHROPIC_KEY}}}",
                   model: claude-3-5-haiku-latest}}]
"""
    async with running_gateway(config) as running:
        yield running


@pytest.mark.parametrize("model", ["native", "claude"])
async def test_vercel_ai_sdk_default_provider(gw: RunningGateway, openai_fake: OpenAIFake, model: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "node", str(JS / "responses.mjs"), gw.v1, model,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    got = json.loads(out.decode().strip().splitlines()[-1])
    assert got["plain"] == "echo: hello there" and got["streamed"] == "echo: stream me"
    assert got["plainUsage"]["outputTokens"] == 3 and got["streamedUsage"]["outputTokens"] == 3
    if model == "native":
        assert openai_fake.last.path == "/v1/responses"  # it did use the Responses API
