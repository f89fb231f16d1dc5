"""Azure OpenAI through the gateway: deployments API and v1 API, key and Entra ID credentials,
streaming, tools, errors and the Responses API (official ``openai`` client as the caller)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
from tests.fakes.azure_upstream import ENTRA_TOKEN, AzureFake, start_azure_fake
from tests.support.gateway import RunningGateway, running_gateway

KEY = "azure-key-fake"
MSG = [{"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
async def azure() -> AsyncIterator[AzureFake]:
    fake = await start_azure_fake(api_key=KEY, stream_interval=0.01)
    yield fake
    await fake.close()


@pytest.fixture(scope="module")
async def gw(azure: AzureFake) -> AsyncIterator[RunningGateway]:
    config = f"""
models:
  - name: dep
    deployments: [{{provider: azure, base_url: "{azure.url}", model: my-gpt4o, api_version: "2024-10-21",
                   api_key: "${{T_AZ:-{KEY}}}"}}]
  - name: v1
    deployments: [{{provider: azure, base_url: "{azure.url}", model: gpt-4o-mini, api_key: "${{T_AZ:-{KEY}}}"}}]
  - name: entra
    deployments: [{{provider: azure, base_url: "{azure.url}", model: gpt-4o-mini, entra_id: true,
                   api_key: "${{T_ENTRA:-{ENTRA_TOKEN}}}"}}]
  - name: wrongkey
    deployments: [{{provider: azure, base_url: "{azure.url}", model: gpt-4o-mini, api_key: "${{T_BAD:-nope}}"}}]
"""
    async with running_gateway(config) as running:
        yield running


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


async def test_deployments_api(gw: RunningGateway, azure: AzureFake) -> None:
    reply = await client(gw).chat.completions.create(model="dep", messages=MSG)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "echo: hello there" and reply.model == "dep"
    sent = azure.last
    assert sent.path == "/openai/deployments/my-gpt4o/chat/completions" and sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers


async def test_v1_api_stream_tools_and_usage(gw: RunningGateway, azure: AzureFake) -> None:
    stream = await client(gw).chat.completions.create(
        model="v1",
        messages=MSG,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = [c async for c in stream]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    args = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(args) == {"arg": "x"} and chunks[-1].usage is not None
    assert azure.last.path == "/openai/v1/chat/completions" and azure.last.body["model"] == "gpt-4o-mini"


async def test_entra_id_token(gw: RunningGateway, azure: AzureFake) -> None:
    await client(gw).chat.completions.create(model="entra", messages=MSG)  # type: ignore[arg-type]
    assert azure.last.headers["authorization"] == f"Bearer {ENTRA_TOKEN}" and "api-key" not in azure.last.headers


async def test_embeddings_and_responses(gw: RunningGateway, azure: AzureFake) -> None:
    vectors = await client(gw).embeddings.create(model="dep", input=["a", "b"])
    assert len(vectors.data) == 2 and azure.last.path == "/openai/deployments/my-gpt4o/embeddings"
    reply = await client(gw).responses.create(model="v1", input="hi")
    assert reply.output_text == "echo: hi" and azure.last.path == "/openai/v1/responses"
    translated = await client(gw).responses.create(model="dep", input="hi")  # deployments API: via chat
    assert translated.output_text == "echo: hi" and azure.last.path.endswith("/chat/completions")


async def test_errors_are_mapped(gw: RunningGateway, azure: AzureFake) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await client(gw).chat.completions.create(model="wrongkey", messages=MSG)  # type: ignore[arg-type]
    assert info.value.status_code == 502  # the gateway's credentials are wrong: not the client's fault
    azure.queue_modes("error_429")
    with pytest.raises(openai.RateLimitError):
        await client(gw).chat.completions.create(model="dep", messages=MSG)  # type: ignore[arg-type]
