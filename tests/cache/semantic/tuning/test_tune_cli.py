"""``tokenomy cache tune`` with the real embedding model on small samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from tokenomy.cache.cli import cache_group
from tokenomy.providers.local.embeddings import default_model_path as embedder_model

DATA = Path(__file__).parents[1] / "data"
QUICK = ["--folds", "2", "--max-steps", "1", "--threads", "2"]
INTENTS = {
    "card_arrival": ["my card has not arrived yet", "when will my new card arrive", "card still not delivered",
                     "how long until my card comes", "waiting for my card to arrive"],
    "card_lost": ["I lost my card", "my card is lost what do I do", "can't find my card anywhere",
                  "I misplaced my bank card", "what to do about a lost card"],
    "weather_paris": ["weather in Paris today", "is it raining in Paris", "Paris forecast for today",
                      "how warm is Paris today", "Paris weather right now"],
    "weather_london": ["weather in London today", "is it raining in London", "London forecast for today",
                       "how warm is London today", "London weather right now"],
}  # fmt: skip


def test_pairs_in_json_write_a_model_and_say_how_to_serve_it(tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    args = ["tune", "--pairs", str(DATA / "langcache_sample.csv"), "--out", str(out), "--format", "json"]
    result = CliRunner().invoke(cache_group, [*args, *QUICK, "--min-accepted", "1", "--target-precision", "0.5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"] and report["pairs"] == 29 and report["positives"] == 12
    assert report["settings"]["learning_rate"] == 1e-4 and report["settings"]["epochs"] == 3
    assert (out / "cross-encoder.w8.onnx").is_file() and (out / "verifier.json").is_file()
    assert "fold 2/2" in result.stderr and "label more pairs" in result.stderr  # 29 pairs certify nothing


def test_intents_too_few_for_the_threshold_exit_1_and_write_no_model(tmp_path: Path) -> None:
    questions = tmp_path / "questions.csv"
    questions.write_text("text,intent\n" + "".join(f"{q},{i}\n" for i, qs in INTENTS.items() for q in qs))
    out = tmp_path / "tuned"
    args = ["tune", "--intents", str(questions), "--out", str(out), "--neighbours", "3", "--no-balance", *QUICK]
    result = CliRunner().invoke(cache_group, args)
    assert result.exit_code == 1, result.output
    assert "fewer than 100 (--min-accepted): label more pairs; nothing written" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "scores.csv"]
    report = json.loads((out / "report.json").read_text())
    assert 0 < report["positives"] < report["pairs"]  # same-intent pairs and near misses of another intent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give one of --pairs FILE or --intents FILE"),
        (["--pairs", "P", "--intents", "P"], "give one of --pairs FILE or --intents FILE"),
        (["--intents", "P", "--intent-column", "category"], "no category column"),
        (["--pairs", "Q"], "not a pairs file"),
        (["--pairs", "S", "--group-column", "writer"], "no writer column (it has: sentence1, sentence2, label)"),
        (["--intents", "P", "--group-column", "writer"], "--group-column goes with --pairs FILE"),
        (["--pairs", "S", "--from", "E"], "not a cross-encoder this command can start from"),
        (["--pairs", "S", "--out", "/proc/no/such/dir"], "cannot write there"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "P").write_text("text,intent\na,b\n")
    (tmp_path / "Q").write_text("sentence1,sentence2,label\na,b,yes\n")
    files = {"P": str(tmp_path / "P"), "Q": str(tmp_path / "Q"), "S": str(DATA / "langcache_sample.csv"),
             "E": str(embedder_model())}  # fmt: skip
    args = [files.get(a, a) for a in args]
    result = CliRunner().invoke(cache_group, ["tune", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code in (1, 2) and message in result.output, result.output
    assert "Traceback" not in result.output


def test_a_group_column_keeps_groups_in_their_folds_and_breaks_the_table_down_by_group(tmp_path: Path) -> None:
    source = (DATA / "langcache_sample.csv").read_text().splitlines()
    grouped = tmp_path / "grouped.csv"
    grouped.write_text("\n".join([source[0] + ",writer"] + [f"{line},w{i % 3}" for i, line in enumerate(source[1:])]))
    args = ["tune", "--pairs", str(grouped), "--group-column", "writer", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cache_group, [*args, *QUICK, "--min-accepted", "1", "--target-precision", "0.5"])
    assert result.exit_code == 0, result.output
    assert "| group | accepted | false | precision | same | recall |" in result.stdout
    assert all(f"\n| w{i} | " in result.stdout for i in range(3))
    assert "interval resampling whole groups" in result.stdout
    assert "the median of the folds' " in result.stdout and "Serve it with:" in result.stdout
