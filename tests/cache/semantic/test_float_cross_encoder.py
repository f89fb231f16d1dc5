"""The shipped cross-encoder in float32 arithmetic: chosen by the CPU, the same weights, nearly the same logits."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tokenomy.cache.semantic.cross_encoder import CrossEncoder, default_model_path
from tokenomy.cache.semantic.float_cross_encoder import float32_model, resolve

PAIRS = [
    ("capital city of canada", "What is the capital city of Canada?"),
    ("How do I reset my password?", "How can I change my account password?"),
    ("Is memory loss related to statins?", "I have memory loss and take statins; will a new drug interact with them?"),
    ("What is the boiling point of water?", "What is the freezing point of water?"),
]


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    cpu = f"model name\t: Some CPU\nflags\t\t: {flags}\n"
    path.write_text(f"processor\t: 0\n{cpu}\nprocessor\t: 1\n{cpu}")
    return path


def test_auto_is_float32_only_on_x86_without_vnni(tmp_path: Path) -> None:
    assert resolve("auto", cpuinfo(tmp_path, "fpu sse4_2 avx avx2 fma f16c")) == "float32"
    assert resolve("auto", cpuinfo(tmp_path, "fpu avx2 avx512f avx512_vnni")) == "int8"
    assert resolve("auto", cpuinfo(tmp_path, "fpu avx2 avx_vnni")) == "int8"
    assert resolve("auto", cpuinfo(tmp_path, "fp asimd asimddp")) == "int8"  # not x86: as shipped
    assert resolve("auto", tmp_path / "missing") == "int8"
    (tmp_path / "empty").write_text("")
    assert resolve("auto", tmp_path / "empty") == "int8"
    assert resolve("float32", cpuinfo(tmp_path, "avx512_vnni avx2")) == "float32"
    assert resolve("int8", cpuinfo(tmp_path, "avx2")) == "int8"


def test_the_float32_variant_has_the_same_weights_and_nearly_the_same_logits(tmp_path: Path) -> None:
    path = float32_model(default_model_path(), tmp_path)
    made = path.stat().st_mtime_ns
    assert float32_model(default_model_path(), tmp_path) == path and path.stat().st_mtime_ns == made  # kept
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert "MatMulNBits" not in ops and "MatMul" in ops
    assert {p.key: p.value for p in model.metadata_props}.get("batch_independent") == "1"
    shipped, variant = CrossEncoder(arithmetic="int8"), CrossEncoder(path)
    shipped.load()
    variant.load()
    before, after = shipped.score(PAIRS), variant.score(PAIRS)
    assert after == pytest.approx(before, abs=0.25)  # only the activations' int8 rounding is gone
    assert [x > 0 for x in after] == [x > 0 for x in before]
    assert variant.score(PAIRS[:1]) == pytest.approx(after[:1], abs=1e-4)  # a pair's logit ignores its batch


def test_arithmetic_float32_loads_the_variant_from_the_models_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENOMY_MODELS_DIR", str(tmp_path))
    encoder = CrossEncoder(arithmetic="float32")
    encoder.load()
    assert encoder.model_path.parent == tmp_path and "float32" in encoder.model_path.name
    assert encoder.batched
    shipped = CrossEncoder(arithmetic="int8")
    shipped.load()
    assert shipped.model_path == default_model_path()


def test_a_models_directory_that_cannot_be_written_keeps_the_shipped_arithmetic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the models directory should be")
    monkeypatch.setenv("TOKENOMY_MODELS_DIR", str(blocker / "models"))
    encoder = CrossEncoder(arithmetic="float32")
    encoder.load()  # no exception: the semantic tier stays on
    assert encoder.model_path == default_model_path()
    assert len(encoder.score(PAIRS[:2])) == 2
