"""``tokenomy distill train`` / ``evaluate`` with the embedded MiniLM, and their errors on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from tokenomy.cli import main

DATA = Path(__file__).parent / "data"


def run(*args: str) -> tuple[int, str]:
    """Exit code and output (stdout on success, so library warnings on stderr do not mix in)."""
    result = CliRunner().invoke(main, ["distill", *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_evaluate_prints_the_documented_json(student_dir: Path) -> None:
    code, out = run(
        "evaluate", "--model", str(student_dir), "--data", str(DATA / "banking77_test.jsonl"), "--format", "json"
    )
    assert code == 0, out
    figures = json.loads(out)
    for key in ("accuracy", "answered_share", "accuracy_when_answered", "p50_latency_ms", "p99_latency_ms", "size_mb"):
        assert key in figures
    # 12 intents, 30 examples each: well above chance (1/12), and abstaining helps the answered share
    assert figures["accuracy_without_abstention"] > 0.85
    assert figures["accuracy"] <= figures["accuracy_without_abstention"]
    assert figures["accuracy_when_answered"] >= figures["accuracy_without_abstention"]
    assert 0 < figures["answered_share"] <= 1 and figures["examples"] == 120
    manifest = json.loads((student_dir / "student.json").read_text())
    assert len(manifest["labels"]) == 12 and 0 < manifest["threshold"] <= 1.01


def test_one_label_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n')
    code, out = run("train", "--data", str(data), "--out", str(tmp_path / "s"))
    assert code == 1 and "one label ('x')" in out
    assert not (tmp_path / "s").exists()


def test_an_empty_text_names_its_line(tmp_path: Path) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n{"messages": [{"role": "user", "content": "  "}], "label": "y"}\n')
    code, out = run("train", "--data", str(data), "--out", str(tmp_path / "s"))
    assert code == 1 and "empty.jsonl:2: empty text" in out


def test_a_changed_label_set_is_named(student_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "new.jsonl"
    data.write_text('{"text": "Where is my card?", "label": "card_arrival_new"}\n')
    code, out = run("evaluate", "--model", str(student_dir), "--data", str(data))
    assert code == 1 and "label set changed" in out and "card_arrival_new" in out


def test_broken_student_directories_are_named_with_the_reason(student_dir: Path, tmp_path: Path) -> None:
    test = str(DATA / "banking77_test.jsonl")
    code, out = run("evaluate", "--model", str(tmp_path / "nowhere"), "--data", test)
    assert code == 1 and "nowhere: no such student directory" in out
    truncated = tmp_path / "truncated"
    shutil.copytree(student_dir, truncated)
    head = (truncated / "head.npz").read_bytes()
    (truncated / "head.npz").write_bytes(head[: len(head) // 2])
    code, out = run("evaluate", "--model", str(truncated), "--data", test)
    assert code == 1 and "truncated or changed" in out
    other = tmp_path / "other"
    shutil.copytree(student_dir, other)
    manifest = json.loads((other / "student.json").read_text())
    (other / "student.json").write_text(json.dumps({**manifest, "format_version": 99}))
    code, out = run("evaluate", "--model", str(other), "--data", test)
    assert code == 1 and "format version 99" in out
