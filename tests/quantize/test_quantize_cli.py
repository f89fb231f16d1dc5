"""``tokenomy quantize`` on the embedded SmolLM2 file: a real llama.cpp re-quantization, measured."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tokenomy.cli import main


def test_quantize_makes_measures_and_recommends(tmp_path: Path) -> None:
    questions = tmp_path / "qa.jsonl"
    questions.write_text(
        '{"prompt": "What is the capital of Japan?", "expected": "Tokyo"}\n'
        '{"prompt": "How many days are in a week?", "expected": ["7", "seven"]}\n'
    )
    out = tmp_path / "variants"
    args = ["quantize", "default", "--types", "q4_0", "--eval", str(questions), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--max-tokens", "10", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # llama.cpp may log warnings to stderr
    (variant,) = report["variants"]
    assert variant["type"] == "q4_0" and Path(variant["path"]).is_file()
    assert variant["size_mb"] > 50 and variant["rss_mb"] > variant["size_mb"] / 2
    assert variant["gen_tps"] > 0 and variant["prompt_tps"] > 0 and variant["load_s"] > 0
    assert len(variant["answers"]) == 2 and variant["agreement"] == 1.0  # the only variant is the reference
    assert report["recommended"] == "q4_0"  # meets the default bar: the highest-precision type's quality


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 a zip file")
    result = CliRunner().invoke(main, ["quantize", str(bogus), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not a GGUF model" in result.output
    assert not (tmp_path / "o").exists()


def test_an_unknown_type_names_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["quantize", "default", "--types", "q4_0,q3_x", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "q3_x" in result.output and "q8_0" in result.output


def test_a_bad_eval_line_names_its_line(tmp_path: Path) -> None:
    questions = tmp_path / "qa.jsonl"
    questions.write_text('{"prompt": "ok?", "expected": "yes"}\n{"question": "no prompt"}\n')
    result = CliRunner().invoke(main, ["quantize", "default", "--types", "q4_0", "--eval", str(questions)])
    assert result.exit_code == 1 and "qa.jsonl:2" in result.output
