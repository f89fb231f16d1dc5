"""The embedded generator's variant choice: the verdict logic, its cache, and bad quantizer input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenomy.providers.local.generation import default_model_path
from tokenomy.providers.local.variants import (
    CANDIDATES,
    QUESTIONS,
    VariantCheck,
    _decide,
    choose_variant,
    variant_path,
)
from tokenomy.quantize.gguf import QuantizeError, quantize_gguf


def check(name: str, correct: int, seconds: float, path: str = "") -> VariantCheck:
    total = len(QUESTIONS)
    return VariantCheck(name, path or f"/m/{name}.gguf", 100.0, ["x"] * total, correct, total, 40, 60, seconds)


def test_the_fastest_variant_that_answers_everything_wins() -> None:
    checks = [check("shipped", 3, 1.0), check("q8_0", 4, 4.0), check("f16", 4, 2.0)]
    choice = _decide(checks)
    assert choice.chosen == "f16" and "fastest" in choice.reason


def test_without_a_passing_variant_the_most_correct_is_served() -> None:
    choice = _decide([check("shipped", 1, 1.0), check("q8_0", 3, 4.0), check("f16", 2, 0.5)])
    assert choice.chosen == "q8_0" and "3/4" in choice.reason


def test_known_answers_are_matched_without_case() -> None:
    assert QUESTIONS[0].correct("The capital of France is PARIS.")
    assert not QUESTIONS[0].correct("L'Étoile, la Cité, la Nation")


def test_the_verdict_is_cached_per_source_and_cpu(tmp_path: Path) -> None:
    source = tmp_path / "tiny.gguf"
    source.write_bytes(default_model_path().read_bytes())
    for name in CANDIDATES[1:]:  # pretend the variants exist: the check below does not read them
        variant_path(source, name, tmp_path).write_bytes(b"GGUF")
    seen: list[str] = []

    def fake_check(name: str, path: Path) -> VariantCheck:
        seen.append(name)
        return check(name, 4 if name == "q8_0" else 2, 1.0, str(path))

    first = choose_variant(source, fake_check, tmp_path)
    assert first.chosen == "q8_0" and seen == list(CANDIDATES)

    def must_not_run(name: str, path: Path) -> VariantCheck:
        raise AssertionError("the cached verdict should have been used")

    again = choose_variant(source, must_not_run, tmp_path)
    assert again.chosen == "q8_0" and again.describe() == first.describe()


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    with pytest.raises(QuantizeError, match="not a GGUF model"):
        quantize_gguf(bogus, tmp_path / "out.gguf", "q8_0")
    with pytest.raises(QuantizeError, match="no such file"):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "out.gguf", "q8_0")


def test_an_unknown_type_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match=r"unknown quantization type 'q9_9'.*q8_0"):
        quantize_gguf(default_model_path(), tmp_path / "out.gguf", "q9_9")
    assert not list(tmp_path.iterdir())


def test_an_unwritable_models_directory_serves_the_shipped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenomy.providers.local.generation import LlamaEngine

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("TOKENOMY_MODELS_DIR", str(blocker))
    engine = LlamaEngine(select_variant=True, n_threads=1)
    engine.load(warm_up=False)
    try:
        assert engine.variant is None and engine.model_path == default_model_path() and engine.n_vocab > 0
    finally:
        engine.close()
