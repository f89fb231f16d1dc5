"""The hand-written profile in docs/planning.md is one that ``tokenomy plan`` reads and uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenomy.planning import plan, profiles

DOC = Path(__file__).resolve().parents[2] / "docs" / "planning.md"


def test_documented_profile_is_read_and_used(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("A minimal hand-written profile") :]
    block = block[block.index("```json") + len("```json") : block.index("```", block.index("```json") + 7)]
    (tmp_path / "l4.json").write_text(block, encoding="utf-8")
    (tmp_path / "notes.json").write_text(json.dumps({"something": "else"}), encoding="utf-8")  # skipped
    (doc,) = profiles.load_dir(tmp_path)
    cap = plan.find_capacity("qwen/qwen2.5-7b-instruct", "l4", [doc], [], {"ttft_ms": 500, "tpot_ms": 50})
    assert cap is not None and cap.kind == "measured"
    assert cap.output_tokens_per_s == pytest.approx(1050.0)
    assert plan.find_capacity("qwen/qwen2.5-7b-instruct", "l4", [doc], [], {"ttft_ms": 300}) is None
