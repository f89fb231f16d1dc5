"""Frameworks on the Responses API through the gateway: the OpenAI Agents SDK (with a function tool),
LangChain's ``ChatOpenAI(use_responses_api=True)`` and the Vercel AI SDK's default OpenAI provider
(``openai(model)``, under Node.js with the packages pinned in tests/js), on a native and a
translated model."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from langchain_openai import ChatOpenAI
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

set_tracing_disabled(True)  # the SDK would otherwise try to export traces to OpenAI
JS = Path(__file__).parents[1] / "js"


@pytest.fixture(scope="module")
async def gw(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> AsyncIterator[RunningGateway]:
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


CALLS: list[str] = []


@function_tool
def lookup(arg: str) -> str:
    """Look something up."""
    CALLS.append(arg)
    return f"found {arg}"


@pytest.mark.parametrize("model", ["native", "claude"])
async def test_agents_sdk_with_a_tool(gw: RunningGateway, model: str) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    agent = Agent(name="helper", instructions="Be brief.", tools=[lookup],
                  model=OpenAIResponsesModel(model=model, openai_client=client))  # fmt: skip
    CALLS.clear()
    result = await Runner.run(agent, "what is the weather")
    assert CALLS == ["x"]  # the model called the tool, the SDK ran it and sent the output back
    # the OpenAI fake echoes the last user text; the Anthropic fake echoes the tool result it got
    assert result.final_output == ("echo: what is the weather" if model == "native" else "echo: found x")


@pytest.mark.parametrize("model", ["native", "claude"])
async def test_agents_sdk_streamed(gw: RunningGateway, model: str) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    agent = Agent(name="helper", model=OpenAIResponsesModel(model=model, openai_client=client))
    run = Runner.run_streamed(agent, "stream this")
    kinds = [event.type async for event in run.stream_events()]
    assert "raw_response_event" in kinds and run.final_output == "echo: stream this"


@pytest.mark.parametrize("model", ["native", "claude"])
async def test_langchain_responses_api(gw: RunningGateway, model: str) -> None:
    llm = ChatOpenAI(model=model, base_url=gw.v1, api_key="unused", use_responses_api=True, max_retries=0)  # type: ignore[arg-type]
    reply = await llm.ainvoke("hello there")
    assert reply.text == "echo: hello there"
    pieces = [chunk.text async for chunk in llm.astream("stream me")]
    assert "".join(pieces) == "echo: stream me"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("model", ["native", "claude"])
async def test_vercel_ai_sdk_default_provider(gw: RunningGateway, openai_fake: OpenAIFake, model: str) -> None:
    assert (JS / "node_modules" / "ai").exists(), "run scripts/install-test-servers.sh (npm ci in tests/js)"
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
