"""``tokenomy cache calibrate`` with the real embedding model on small samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenomy.cache.cli import cache_group
from tokenomy.cache.semantic.calibrate import Pair, Point, curve, load_pairs, recommend, thresholds

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def test_json_shape(runner: CliRunner) -> None:
    result = runner.invoke(
        cache_group, ["calibrate", "--pairs", str(DATA / "langcache_sample.csv"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["pairs"] == 29 and doc["positives"] == 12 and doc["negatives"] == 17
    assert doc["verify"] == "model" and doc["setting"] == "accept" and doc["target_precision"] == 0.99
    points = doc["thresholds"]
    assert [p["threshold"] for p in points] == sorted(p["threshold"] for p in points)
    assert set(points[0]) == {"threshold", "accepted", "tp", "fp", "fn", "precision", "recall"}
    assert all(p["tp"] + p["fn"] == 12 and p["accepted"] == p["tp"] + p["fp"] for p in points)
    chosen = doc["recommended"]
    assert chosen is not None and chosen["precision"] >= 0.99
    # 29 pairs cannot certify 1 % false hits: the bound and the warning say so
    assert doc["false_hit_rate_upper_95"] > 0.01 and "label more pairs" in doc["warning"]


def test_entities_matcher_and_small_sample_warning_on_stderr(runner: CliRunner) -> None:
    args = ["calibrate", "--pairs", str(DATA / "langcache_sample.csv"), "--verify", "entities"]
    result = runner.invoke(cache_group, args)
    assert result.exit_code == 0, result.output
    assert "recommended threshold:" in result.output and "warning: only" in result.output


def test_same_text_labelled_different_is_flagged(runner: CliRunner, tmp_path: Path) -> None:
    rows = [("How do I overcome my fear ?", "how do i overcome my fear?", 0),  # the same text: a label to check
            ("What's the capital of France?", "What is the capital of France", 1),
            ("Capital of France", "Population of France", 0)]  # fmt: skip
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2,label\n" + "".join(f'"{a}","{b}",{y}\n' for a, b, y in rows))
    from tokenomy.cache.semantic.calibrate import label_conflicts

    assert [(p.a, p.label) for p in label_conflicts(load_pairs(path))] == [("How do I overcome my fear ?", 0)]
    result = runner.invoke(cache_group, ["calibrate", "--pairs", str(path), "--verify", "none", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["label_conflicts"] == 1 and "check those labels" in doc["label_warning"]
    table = runner.invoke(cache_group, ["calibrate", "--pairs", str(path), "--verify", "none"])
    assert table.exit_code == 0 and "1 pair(s) labelled different are the same text" in table.output
    clean = tmp_path / "clean.csv"
    clean.write_text("sentence1,sentence2,label\n" + "".join(f'"{a}","{b}",{y}\n' for a, b, y in rows[1:]))
    doc = json.loads(runner.invoke(cache_group, ["calibrate", "--pairs", str(clean), "--verify", "none",
                                                 "--format", "json"]).output)  # fmt: skip
    assert doc["label_conflicts"] == 0 and doc["label_warning"] is None


def test_small_sample_bound() -> None:
    from tokenomy.cache.semantic.calibrate import small_sample_warning
    from tokenomy.cache.semantic.stats import needed_at, needed_for, upper_bound

    assert needed_for(0.01) == 299 and abs(upper_bound(0, 299) - 0.00997) < 1e-4
    assert small_sample_warning(Point(4.0, 400, 400, 0, 0, 1.0, 1.0), 0.99) is None
    none_false = small_sample_warning(Point(4.0, 100, 100, 0, 0, 1.0, 1.0), 0.99)
    assert "299 accepted pairs with no false one" in str(none_false)
    # 23 false in 574 (4.0 %): certifying 5 % takes more pairs at that rate, not "59 with no false one"
    warning = str(small_sample_warning(Point(1.9, 574, 551, 23, 0, 0.96, 0.3), 0.95))
    needed = needed_at(0.05, 23 / 574)
    assert needed is not None and f"about {needed} accepted pairs false at the rate seen (4.0%)" in warning
    share = 23 / 574
    assert upper_bound(round(needed * share), needed) < 0.05 <= upper_bound(round((needed - 1) * share), needed - 1)
    assert needed_at(0.05, 0.0) == needed_for(0.05) and needed_at(0.05, 0.05) is None
    assert "not under the 5.00% asked for" in str(small_sample_warning(Point(1.0, 100, 90, 10, 0, 0.9, 0.3), 0.95))


def test_table_and_stsb_input(runner: CliRunner) -> None:
    args = ["calibrate", "--pairs", str(DATA / "stsb_sample.tsv"), "--verify", "none", "--target-precision", "0.9"]
    result = runner.invoke(cache_group, args)
    assert result.exit_code == 0, result.output
    assert "pairs (3 same, 8 different), verify: none" in result.output
    assert "threshold" in result.output.splitlines()[1]


def test_bad_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("sentence1,sentence2,label\n")
    result = runner.invoke(cache_group, ["calibrate", "--pairs", str(path)])
    assert result.exit_code != 0 and "no labelled pairs" in result.output


def test_stsb_labels() -> None:
    pairs = load_pairs(DATA / "stsb_sample.tsv")
    assert len(pairs) == 11 and sum(p.label for p in pairs) == 3  # 3.5, 2.6 and 2.8 fall between


def test_recommend_is_monotone_and_slack_raises_it() -> None:
    def point(t: float, tp: int, fp: int) -> Point:
        return Point(t, tp + fp, tp, fp, 10 - tp, tp / (tp + fp) if tp + fp else None, tp / 10)

    points = [point(0.5, 10, 5), point(0.6, 9, 0), point(0.7, 8, 1), point(0.8, 8, 0), point(0.9, 6, 0)]
    best = recommend(points, 0.99)
    assert best is not None and best.threshold == 0.8  # 0.6 is clean but 0.7 above it is not
    raised = recommend(points, 0.99, recall_slack=0.25)
    assert raised is not None and raised.threshold == 0.9
    assert recommend([point(0.5, 1, 1)], 0.99) is None


def test_curve_applies_the_check() -> None:
    import numpy as np

    pairs = [Pair("weather in Paris", "weather in London", 0), Pair("2 apples", "two apples", 1)]
    sims = np.array([0.95, 0.95], dtype=np.float32)
    plain, checked = curve(pairs, sims, False, [0.9]), curve(pairs, sims, True, [0.9])
    assert (plain[0].fp, checked[0].fp, checked[0].tp) == (1, 0, 1)
    assert thresholds(0.5, 0.6, 0.05) == [0.5, 0.55, 0.6]
