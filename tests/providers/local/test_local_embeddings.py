"""all-MiniLM-L6-v2 on ONNX Runtime, directly and through LocalProvider (with its micro-batcher)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from tests.providers.local.local_support import CHAT_MODEL, EMBED_MODEL, context, deployment, local_config

from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import Completion, Endpoint
from tokenomy.providers.local.embedding_api import decode_base64
from tokenomy.providers.local.embeddings import EMBEDDING_DIM, MAX_SEQ_LENGTH, MiniLMEmbedder
from tokenomy.providers.local.provider import LocalProvider
from tokenomy.tokens.decode import decoder

DEP = deployment(EMBED_MODEL)
SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is resting on a rug.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "How do I reset my password?",
    "I forgot my login credentials and need to change them.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "emoji 🚀 and accents: café, naïve",
    "short",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    model = MiniLMEmbedder(n_threads=2)
    model.load()
    return model


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    p = LocalProvider(local_config(EMBED_MODEL, embeddings={"n_threads": 2, "max_batch_size": 16}))
    await p.start()
    yield p
    await p.close()


def vectors(embedder: MiniLMEmbedder, items: list[Any]) -> np.ndarray:
    return np.stack([e.vector for e in embedder.embed(items)])


async def embed(provider: LocalProvider, body: dict[str, Any]) -> dict[str, Any]:
    response = await provider.send(context(Endpoint.EMBEDDINGS, body, EMBED_MODEL), DEP)
    assert isinstance(response, Completion)
    return response.body


def test_shape_and_unit_length(embedder: MiniLMEmbedder) -> None:
    v = vectors(embedder, SENTENCES)
    assert v.shape == (len(SENTENCES), EMBEDDING_DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: MiniLMEmbedder) -> None:
    cat, kitten, stocks, reset, forgot, plants = vectors(embedder, SENTENCES[:6])
    assert cat @ kitten > cat @ stocks + 0.2
    assert reset @ forgot > reset @ plants + 0.2
    assert cat @ kitten > 0.5 and reset @ forgot > 0.5


def test_batch_equals_one_by_one(embedder: MiniLMEmbedder) -> None:
    batch = vectors(embedder, SENTENCES)
    single = np.stack([vectors(embedder, [s])[0] for s in SENTENCES])
    assert np.abs(batch - single).max() < 1e-4


def test_token_ids_embed_like_their_text(embedder: MiniLMEmbedder) -> None:
    ids = embedder.token_ids(["Paris is the capital of France."])[0]
    with_specials, without = tuple(ids), tuple(ids[1:-1])
    v = vectors(embedder, ["Paris is the capital of France.", with_specials, without])
    assert np.abs(v[0] - v[1]).max() < 1e-5 and np.abs(v[0] - v[2]).max() < 1e-5


def test_tokens_are_counted_and_truncated(embedder: MiniLMEmbedder) -> None:
    short, long = embedder.embed(["hello world", "word " * 1000])
    assert short.tokens == 4  # [CLS] hello world [SEP]
    assert long.tokens == MAX_SEQ_LENGTH
    assert embedder.count_tokens(["hello world", (7592, 2088)]) == 8


def test_padding_was_reset(embedder: MiniLMEmbedder) -> None:
    assert len(embedder.token_ids(["hi"])[0]) == 3  # the shipped tokenizer.json would pad to 128


async def test_provider_float_response(provider: LocalProvider) -> None:
    body = await embed(provider, {"input": SENTENCES[:3]})
    assert body["object"] == "list" and body["model"] == EMBED_MODEL
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    v = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert v.shape == (3, EMBEDDING_DIM)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 3


async def test_base64_decodes_to_the_float_vectors(provider: LocalProvider) -> None:
    as_float = await embed(provider, {"input": SENTENCES[:2]})
    as_b64 = await embed(provider, {"input": SENTENCES[:2], "encoding_format": "base64"})
    for f, b in zip(as_float["data"], as_b64["data"], strict=True):
        assert isinstance(b["embedding"], str)
        assert np.array_equal(decode_base64(b["embedding"]), np.array(f["embedding"], dtype=np.float32))


async def test_token_array_inputs_are_the_clients_tokens(provider: LocalProvider) -> None:
    ids = decoder("cl100k_base").encoding.encode("The cat sits on the mat.")  # what OpenAI clients send
    text = await embed(provider, {"input": "The cat sits on the mat."})
    one_array = await embed(provider, {"input": ids})
    arrays = await embed(provider, {"input": [ids, ids]})
    reference = np.array(text["data"][0]["embedding"])
    for body in (one_array, arrays):
        for d in body["data"]:
            assert np.abs(np.array(d["embedding"]) - reference).max() < 1e-5
    assert len(arrays["data"]) == 2


async def test_concurrent_requests_are_batched_and_match(provider: LocalProvider, embedder: MiniLMEmbedder) -> None:
    assert provider.batcher is not None
    before = provider.batcher.batches_run
    bodies = await asyncio.gather(*(embed(provider, {"input": s}) for s in SENTENCES * 4))
    assert provider.batcher.batches_run - before < len(bodies)
    expected = vectors(embedder, SENTENCES * 4)
    got = np.array([b["data"][0]["embedding"] for b in bodies], dtype=np.float32)
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": [1, "a"]}, "input"),
        ({"input": [10**9]}, "input"),
        ({"input": [[101], []]}, "input[1]"),
        ({"input": "a", "encoding_format": "binary"}, "encoding_format"),
        ({"input": "a", "dimensions": 64}, "dimensions"),
    ],
)
async def test_bad_inputs_are_400_with_param(provider: LocalProvider, body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        await embed(provider, body)
    assert info.value.status == 400 and info.value.param == param


async def test_chat_on_the_embedding_model_is_400(provider: LocalProvider) -> None:
    ctx = context(Endpoint.CHAT, {"messages": [{"role": "user", "content": "hi"}]}, EMBED_MODEL)
    with pytest.raises(GatewayError, match=f"model {EMBED_MODEL} does not support chat") as info:
        await provider.send(ctx, DEP)
    assert info.value.status == 400


async def test_only_the_embedding_model_is_loaded(provider: LocalProvider) -> None:
    assert provider.ready() and provider.generator is None and provider.embedder is not None
    with pytest.raises(GatewayError) as info:
        await provider.send(context(Endpoint.CHAT, {"messages": []}, CHAT_MODEL), deployment(CHAT_MODEL))
    assert info.value.status == 503
