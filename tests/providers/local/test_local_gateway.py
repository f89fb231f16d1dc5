"""The embedded models end to end: a real gateway on loopback, called with the official openai client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from tests.providers.local.local_support import CHAT_MODEL, EMBED_MODEL, choose_embedded_variant, local_config
from tests.support.gateway import RunningGateway, running_gateway

QUESTION: Any = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[RunningGateway]:
    await asyncio.to_thread(choose_embedded_variant)
    config = local_config(
        CHAT_MODEL, EMBED_MODEL, generation={"n_threads": 2, "max_tokens_default": 32}, embeddings={"n_threads": 2}
    )
    async with running_gateway(config) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.v1, api_key="unused", max_retries=0) as c:
        yield c


async def test_chat(client: openai.AsyncOpenAI) -> None:
    answer = await client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, max_tokens=16)
    assert answer.choices[0].message.content
    assert answer.model == CHAT_MODEL
    assert answer.usage is not None and answer.usage.completion_tokens > 0


async def test_chat_stream_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=CHAT_MODEL,
        messages=QUESTION,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


async def test_stream_without_usage_has_no_usage_chunk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, max_tokens=8, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)


async def test_text_completion(client: openai.AsyncOpenAI) -> None:
    answer = await client.completions.create(model=CHAT_MODEL, prompt="Once upon a time", max_tokens=8)
    assert answer.choices[0].text and answer.usage is not None


async def test_embeddings_float_and_base64(client: openai.AsyncOpenAI) -> None:
    floats = await client.embeddings.create(model=EMBED_MODEL, input=["hello", "world"], encoding_format="float")
    b64 = await client.embeddings.create(model=EMBED_MODEL, input=["hello", "world"])  # the SDK asks for base64
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 384
    for f, b in zip(floats.data, b64.data, strict=True):
        assert np.allclose(f.embedding, b.embedding, atol=1e-7)
    assert floats.usage.prompt_tokens == 6


async def test_unsupported_parameter_is_a_400_with_param(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=CHAT_MODEL, messages=QUESTION, n=2)
    assert info.value.param == "n"


async def test_chat_on_the_embedding_model_is_a_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not support chat"):
        await client.chat.completions.create(model=EMBED_MODEL, messages=QUESTION)


async def test_embedded_models_are_priced_by_default(gateway: RunningGateway, client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, max_tokens=8, extra_headers={"x-request-id": "priced-chat"}
    )
    await client.embeddings.create(
        model=EMBED_MODEL, input="a sentence no other test embeds", extra_headers={"x-request-id": "priced-embed"}
    )
    selected = await gateway.ledger_rows(
        "SELECT client_request_id, price_source, cost_usd FROM requests WHERE client_request_id LIKE 'priced-%'"
    )
    rows = {rid: (source, cost) for rid, source, cost in selected}
    assert set(rows) == {"priced-chat", "priced-embed"}
    for source, cost in rows.values():
        assert source == "default" and cost > 0, rows


async def test_the_report_of_a_demo_shows_explained_costs(
    gateway: RunningGateway, client: openai.AsyncOpenAI, tmp_path: Any
) -> None:
    from click.testing import CliRunner

    from tokenomy.cli import main

    for question in ("What is 2+2?", "Name a colour."):
        await client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": question}], max_tokens=8
        )
    await gateway.flush_ledger()
    config = tmp_path / "report.yaml"
    ledger = gateway.app.gateway.config.ledger.sqlite_path
    config.write_text(
        f'ledger: {{path: "{ledger}"}}\n'
        f"models: [{{name: x, deployments: [{{provider: local, model: {CHAT_MODEL}}}]}}]\n"
    )
    result = CliRunner().invoke(main, ["report", "--config", str(config), "--since", "1h"])
    assert result.exit_code == 0, result.output
    spend = next(line for line in result.output.splitlines() if "│ spend" in line)
    assert "$0.0000 " not in spend + " " and "$" in spend, spend
    assert "priced: default machine cost (embedded models)" in result.output
    assert "compare with gpt-4o-mini (not a saving)" in result.output


async def test_readme_question_is_answered_correctly_at_temperature_0(
    client: openai.AsyncOpenAI, gateway: RunningGateway
) -> None:
    """The served variant was chosen on this CPU by its known answers; the README's example holds."""
    question: Any = [{"role": "user", "content": "What is the capital of France?"}]
    answer = await client.chat.completions.create(model=CHAT_MODEL, messages=question, temperature=0, max_tokens=24)
    assert "paris" in (answer.choices[0].message.content or "").lower()
    async with httpx.AsyncClient() as http:
        listed = (await http.get(f"{gateway.v1}/models")).json()["data"]
    entry = next(m for m in listed if m["id"] == CHAT_MODEL)
    variant = entry["tokenomy"]["variant"]
    chosen = next(c for c in variant["checks"] if c["variant"] == variant["variant"])
    assert chosen["correct"] == "4/4" and chosen["tokens_per_s"] > 0
    assert {c["variant"] for c in variant["checks"]} == {"shipped", "q8_0", "f16"}
    assert entry["tokenomy"]["parallel"] == (4 if variant["variant"] == "f16" else 1)  # parallel: auto
    assert "variant" not in next(m for m in listed if m["id"] == EMBED_MODEL)["tokenomy"]
