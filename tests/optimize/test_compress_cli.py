"""``tokenomy compress`` offline: JSON lines in, compressed JSON lines and a summary out, bad lines reported."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tokenomy.cli import main


def _context() -> str:
    lines = [
        f"Speaker {'AB'[i % 2]}: we discussed the {('menu', 'parking', 'budget')[i % 3]} again today"
        for i in range(300)
    ]
    lines[150] = "Speaker A: the server password rotation happens every ninety days"
    return "\n".join(lines)


def test_compress_writes_each_item_with_token_counts_and_prints_a_summary(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    items = [{"id": i, "context": _context(), "query": "How often is the server password rotated?"} for i in range(3)]
    source.write_text("\n".join(json.dumps(item) for item in items) + "\n")
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["compress", "--input", str(source), "--output", str(target), "--ratio", "4"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert "ninety" in row["compressed"]
        assert row["compressed_tokens"] < row["original_tokens"] / 3
    assert "items" in result.output and "ms/item" in result.output


def test_bad_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    good = {"id": "ok", "context": _context(), "query": "password"}
    source.write_text(json.dumps(good) + "\nnot json\n" + json.dumps({"id": "x", "context": 5, "query": "q"}) + "\n")
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["compress", "--input", str(source), "--output", str(target), "--ratio", "4"])
    assert result.exit_code == 1
    assert "line 2: not JSON" in result.output and "line 3: 'context' must be a string" in result.output
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["ok"]


def test_a_ratio_of_one_or_less_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("")
    result = CliRunner().invoke(
        main, ["compress", "--input", str(source), "--output", str(tmp_path / "o"), "--ratio", "1"]
    )
    assert result.exit_code == 2 and "--ratio" in result.output
