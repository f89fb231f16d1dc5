"""LangChain's ``OpenAIEmbeddings`` (which sends cl100k_base token arrays by default) gets the same
vectors from the embedded model as plain text sent with the official ``openai`` client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from tests.providers.local.local_support import EMBED_MODEL, local_config
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.config.models import GatewayConfig
from tokenomy.tokens.decode import decoder
from tokenomy.tokens.tiktoken_offline import seed_cache

TEXTS = ["Paris is the capital of France.", "The quick brown fox jumps over the lazy dog.", "Ein Satz auf Deutsch."]


@pytest.fixture(scope="module")
async def gw() -> AsyncIterator[RunningGateway]:
    seed_cache()  # LangChain tokenizes with tiktoken too: offline, from the shipped encodings
    async with running_gateway(local_config(EMBED_MODEL, embeddings={"n_threads": 2})) as running:
        yield running


async def test_langchain_token_arrays_match_text(gw: RunningGateway) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    reference = await client.embeddings.create(model=EMBED_MODEL, input=TEXTS)
    embeddings = OpenAIEmbeddings(model=EMBED_MODEL, base_url=gw.v1, api_key="unused", max_retries=0)  # type: ignore[arg-type]
    assert embeddings.check_embedding_ctx_length  # the default: token arrays, not text, go over the wire
    vectors = await embeddings.aembed_documents(TEXTS)
    for got, want in zip(vectors, reference.data, strict=True):
        cosine = float(np.dot(got, want.embedding) / (np.linalg.norm(got) * np.linalg.norm(want.embedding)))
        assert cosine > 0.9999


async def test_configured_o200k_token_arrays(gw: RunningGateway) -> None:
    ids = decoder("o200k_base").encoding.encode(TEXTS[0])
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    text = (await client.embeddings.create(model=EMBED_MODEL, input=TEXTS[0])).data[0].embedding
    misread = (await client.embeddings.create(model=EMBED_MODEL, input=[ids])).data[0].embedding  # taken as cl100k
    assert float(np.dot(text, misread)) < 0.9
    # cache off: the first gateway's answers are cached under the same model name and input
    config = GatewayConfig.model_validate({
        "models": [{"name": EMBED_MODEL, "deployments": [{"provider": "local", "model": EMBED_MODEL}]}],
        "local": {"embeddings": {"n_threads": 2, "token_encoding": "o200k_base"}},
        "cache": {"exact": {"enabled": False}},
    })  # fmt: skip
    async with running_gateway(config) as o200k:
        other = openai.AsyncOpenAI(base_url=o200k.v1, api_key="unused", max_retries=0)
        right = (await other.embeddings.create(model=EMBED_MODEL, input=[ids])).data[0].embedding
    assert float(np.dot(text, right)) > 0.9999
