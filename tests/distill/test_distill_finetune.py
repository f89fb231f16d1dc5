"""``tokenomy distill train --student minilm-finetuned``: a fine-tuned MiniLM exported to ONNX, and its errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenomy.cli import main
from tokenomy.distill.encoder_student import EncoderStudent
from tokenomy.distill.errors import StudentError
from tokenomy.distill.student import load_student

DATA = Path(__file__).parent / "data"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["distill", *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_without_pytorch_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    out = tmp_path / "s"
    code, output = run(
        "train", "--data", str(DATA / "banking77_train.jsonl"), "--out", str(out), "--student", "minilm-finetuned"
    )
    assert code == 1 and "pip install 'tokenomy[distill]'" in output and "torch is not installed" in output
    assert "Traceback" not in output and not out.exists()


def test_the_finetuned_student_evaluates_and_serves_without_pytorch(finetuned_student_dir: Path) -> None:
    code, out = run(
        "evaluate",
        "--model",
        str(finetuned_student_dir),
        "--data",
        str(DATA / "banking77_test.jsonl"),
        "--format",
        "json",
    )
    assert code == 0, out
    figures = json.loads(out)
    assert figures["accuracy_without_abstention"] > 0.85 and figures["examples"] == 120  # chance is 1/12
    assert figures["accuracy"] <= figures["accuracy_without_abstention"] <= figures["accuracy_when_answered"]
    manifest = json.loads((finetuned_student_dir / "student.json").read_text())
    assert manifest["kind"] == "fine-tuned-encoder" and manifest["format_version"] == 3
    assert manifest["temperature"] > 0 and 0 < manifest["threshold"] <= 1.01 and len(manifest["labels"]) == 12
    assert "held-out" in manifest["threshold_from"]  # calibrated on training data, not the test file
    names = {p.name for p in finetuned_student_dir.iterdir()}
    assert (
        {"model.onnx", "student.json", "tokenizer.json"}
        <= names
        <= {"model.onnx", "student.json", "tokenizer.json", "ngram.npz"}
    )
    assert set(manifest["files"]) == names - {"student.json"}
    assert (finetuned_student_dir / "model.onnx").stat().st_size < 30e6  # int8 weights: about 23 MB


def test_a_truncated_or_foreign_finetuned_student_is_refused(finetuned_student_dir: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated"
    shutil.copytree(finetuned_student_dir, truncated)
    model = truncated / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(StudentError, match=f"{model}: truncated or changed"):
        load_student(truncated)
    other = tmp_path / "other"
    shutil.copytree(finetuned_student_dir, other)
    manifest = json.loads((other / "student.json").read_text())
    (other / "student.json").write_text(json.dumps(manifest | {"format_version": 99}))
    with pytest.raises(
        StudentError, match=f"{other}: fine-tuned-encoder student format version 99; this Tokenomy reads 3"
    ):
        load_student(other)
    (other / "student.json").write_text(json.dumps(manifest))
    (other / "tokenizer.json").unlink()
    with pytest.raises(StudentError, match=f"{other}: no tokenizer.json"):
        load_student(other)
    assert isinstance(load_student(finetuned_student_dir), EncoderStudent)


def test_one_label_is_refused_before_any_training(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the distill extra (PyTorch) is not installed")
    data = tmp_path / "one.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n')
    code, out = run("train", "--data", str(data), "--out", str(tmp_path / "s"), "--student", "minilm-finetuned")
    assert code == 1 and "one label ('x')" in out
