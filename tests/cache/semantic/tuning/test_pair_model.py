"""The cross-encoder rebuilt in PyTorch from its ONNX file computes what the file computes, and exports back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tokenomy.cache.semantic.cross_encoder import CrossEncoder, default_model_path, encode_pairs  # noqa: E402
from tokenomy.cache.semantic.tuning.export import export  # noqa: E402
from tokenomy.cache.semantic.tuning.pair_model import from_onnx, onnx_weights  # noqa: E402
from tokenomy.providers.local.embeddings import default_model_path as embedder_path  # noqa: E402

PAIRS = [
    ("How do I reset my password?", "I forgot my password, how can I reset it?"),
    ("weather in Paris", "weather in London"),
    ("convert USD to EUR", "convert EUR to USD"),
    ("best pizza in NYC", "where to get good pizza in New York"),
]


def torch_logits(model: object, pairs: list[tuple[str, str]]) -> list[float]:
    encoder = CrossEncoder(arithmetic="int8")
    encoder.load()
    ids, mask = encode_pairs(encoder._tokenizer, pairs)
    with torch.no_grad():
        return [float(x) for x in model(torch.from_numpy(ids), torch.from_numpy(mask))]  # type: ignore[operator]


def test_the_rebuilt_module_matches_the_shipped_file_in_float32() -> None:
    model = from_onnx(default_model_path())
    as_float32 = CrossEncoder(arithmetic="float32")
    as_float32.load()
    assert torch_logits(model, PAIRS) == pytest.approx(as_float32.score(PAIRS), abs=1e-3)
    shipped = CrossEncoder(arithmetic="int8")
    shipped.load()
    assert torch_logits(model, PAIRS) == pytest.approx(shipped.score(PAIRS), abs=0.25)  # int8 activations


def test_every_weight_is_read_with_its_shape() -> None:
    weights = onnx_weights(default_model_path())
    assert weights["bert.encoder.layer.5.output.dense.weight"].shape == (384, 1536)
    assert weights["bert.embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert weights["head.weight"].shape == (1, 384)
    assert np.isfinite(weights["bert.encoder.layer.0.attention.self.query.weight"]).all()


def test_an_onnx_file_of_another_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not a cross-encoder"):
        from_onnx(embedder_path())


def test_exported_again_it_is_the_shipped_encoding_with_the_same_logits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "again.onnx"
    export(from_onnx(default_model_path()), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.onnx"]  # nothing left behind
    again, shipped = CrossEncoder(path, arithmetic="int8"), CrossEncoder(arithmetic="int8")
    again.load()
    shipped.load()
    assert again.batched  # marked batch-independent, like the shipped file
    assert again.score(PAIRS) == pytest.approx(shipped.score(PAIRS), abs=0.05)
    # arithmetic float32 (auto on CPUs without VNNI) applies to a file other than the shipped one too
    monkeypatch.setenv("TOKENOMY_MODELS_DIR", str(tmp_path / "models"))
    as_float32 = CrossEncoder(path, arithmetic="float32")
    as_float32.load()
    assert as_float32.model_path.parent == tmp_path / "models" and "float32" in as_float32.model_path.name
    assert as_float32.score(PAIRS) == pytest.approx(again.score(PAIRS), abs=0.25)
