"""``tokenomy quantize`` on an ONNX sentence encoder: int8 variants checked by cosine to full precision."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tokenomy.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["quantize", *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_a_per_channel_int8_encoder_stays_close_to_full_precision(tmp_path: Path) -> None:
    code, out = run(
        "paraphrase-minilm-l3-v2", "--types", "int8-per-channel", "--out", str(tmp_path), "--format", "json"
    )
    assert code == 0, out
    fp32, int8 = json.loads(out)["variants"]
    assert fp32["variant"] == "fp32" and int8["variant"] == "int8-per-channel"
    assert int8["size_mb"] < 0.3 * fp32["size_mb"]  # int8 weights: about a quarter of float32
    assert 0.99 < int8["min_cosine"] <= int8["mean_cosine"] < 1.0  # close, but not the same model
    assert Path(int8["path"]).is_file()


def test_bad_types_and_files_are_named(tmp_path: Path) -> None:
    code, out = run("paraphrase-minilm-l3-v2", "--types", "int4", "--out", str(tmp_path))
    assert code == 1 and "unknown ONNX quantization type int4" in out and "int8-per-channel" in out
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    code, out = run(str(bogus), "--types", "int8", "--out", str(tmp_path / "q"))
    assert code == 1 and str(bogus) in out
    code, out = run(str(tmp_path / "missing.onnx"))
    assert code == 1 and "missing.onnx: no such file" in out
