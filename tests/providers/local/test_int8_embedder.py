"""``local.embeddings.arithmetic: int8``: the embedded model with 8-bit MatMul weights computed in int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.providers.local.local_support import EMBED_MODEL, context, deployment, local_config
from tests.providers.local.test_local_embeddings import SENTENCES

from tokenomy.pipeline.context import Completion, Endpoint
from tokenomy.providers.local.embeddings import MiniLMEmbedder
from tokenomy.providers.local.provider import LocalProvider


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[MiniLMEmbedder, MiniLMEmbedder]:
    mp = pytest.MonkeyPatch()
    mp.setenv("TOKENOMY_MODELS_DIR", str(tmp_path_factory.mktemp("models")))
    try:
        float32 = MiniLMEmbedder(n_threads=1)
        int8 = MiniLMEmbedder(n_threads=1, arithmetic="int8")
        float32.load()
        int8.load()
    finally:
        mp.undo()
    return float32, int8


def test_the_variant_is_made_once_and_kept(models: tuple[MiniLMEmbedder, MiniLMEmbedder]) -> None:
    float32, int8 = models
    assert int8.model_path != float32.model_path and int8.model_path.suffix == ".onnx"
    assert not list(Path(int8.model_path).parent.glob("*.partial"))
    import onnx

    ops = {node.op_type for node in onnx.load(str(int8.model_path)).graph.node}
    assert "MatMulNBits" in ops


def test_vectors_stay_close_to_float32(models: tuple[MiniLMEmbedder, MiniLMEmbedder]) -> None:
    float32, int8 = models
    a = np.stack([e.vector for e in float32.embed(SENTENCES)])
    b = np.stack([e.vector for e in int8.embed(SENTENCES)])
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
    assert not np.array_equal(a, b)  # it really is another computation


def test_a_texts_vector_does_not_depend_on_its_batch(models: tuple[MiniLMEmbedder, MiniLMEmbedder]) -> None:
    _, int8 = models
    alone = np.stack([int8.embed([s])[0].vector for s in SENTENCES])
    together = np.stack([e.vector for e in int8.embed(SENTENCES * 3)])[: len(SENTENCES)]
    np.testing.assert_array_equal(alone, together)


async def test_served_through_the_provider(
    models: tuple[MiniLMEmbedder, MiniLMEmbedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = models[1].model_path
    monkeypatch.setenv("TOKENOMY_MODELS_DIR", str(made.parent))  # the file made above is read, not made again
    provider = LocalProvider(local_config(EMBED_MODEL, embeddings={"n_threads": 1, "arithmetic": "int8"}))
    await provider.start()
    try:
        body = {"input": SENTENCES[:2]}
        response = await provider.send(context(Endpoint.EMBEDDINGS, body, EMBED_MODEL), deployment(EMBED_MODEL))
        assert isinstance(response, Completion)
        data = response.body["data"]
        assert len(data) == 2 and len(data[0]["embedding"]) == 384
        assert provider.embedder is not None and provider.embedder.model_path == made
    finally:
        await provider.close()
