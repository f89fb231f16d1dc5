"""Model identity: ``GET /v1/models/{id}``, and the ``model`` field of every answer is the name the
client asked for, while the headers say what served it (official ``openai`` client as the caller)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.keys.record import hash_key

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
async def gw(openai_fake: OpenAIFake) -> AsyncIterator[RunningGateway]:
    key = f"${{T_KEY:-{OPENAI_KEY}}}"
    dep = f'{{provider: openai, base_url: "{openai_fake.base_url}", api_key: "{key}", model: gpt-4o-mini}}'
    config = f"""
auth:
  keys:
    - {{name: all, sha256: "{hash_key("sk-all")}"}}
    - {{name: narrow, sha256: "{hash_key("sk-narrow")}", models: [primary]}}
models:
  - {{name: primary, aliases: [prime], fallbacks: [backup], deployments: [{dep}]}}
  - {{name: backup, deployments: [{dep}]}}
"""
    async with running_gateway(config) as running:
        yield running


def client(gw: RunningGateway, key: str = "sk-all") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=0)


async def test_retrieve_model(gw: RunningGateway) -> None:
    model = await client(gw).models.retrieve("prime")
    assert model.id == "prime" and model.object == "model" and model.owned_by == "tokenomy"
    with pytest.raises(openai.NotFoundError) as info:
        await client(gw).models.retrieve("nope")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        await client(gw, "sk-narrow").models.retrieve("backup")  # not on this key's allow-list
    assert (await client(gw, "sk-narrow").models.retrieve("primary")).id == "primary"
    with pytest.raises(openai.AuthenticationError):
        await client(gw, "sk-wrong").models.retrieve("primary")


async def test_model_field_is_the_requested_name(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    raw = await client(gw).chat.completions.with_raw_response.create(model="prime", messages=MSG)  # type: ignore[arg-type]
    assert raw.parse().model == "prime" and raw.headers["x-tokenomy-model"] == "primary"
    assert openai_fake.last.body["model"] == "gpt-4o-mini"
    stream = await client(gw).chat.completions.create(model="prime", messages=MSG, stream=True)  # type: ignore[arg-type]
    assert {chunk.model async for chunk in stream} == {"prime"}
    embedded = await client(gw).embeddings.create(model="primary", input="x")
    assert embedded.model == "primary"


async def test_fallback_keeps_the_requested_name_and_headers_say_who_served(
    gw: RunningGateway, openai_fake: OpenAIFake
) -> None:
    openai_fake.queue_modes("error_500")
    raw = await client(gw).chat.completions.with_raw_response.create(model="primary", messages=MSG)  # type: ignore[arg-type]
    assert raw.parse().model == "primary"
    assert raw.headers["x-tokenomy-model"] == "backup" and raw.headers["x-tokenomy-deployment"] == "openai/gpt-4o-mini"
