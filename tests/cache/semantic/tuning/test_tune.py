"""``tune``: cross-validated fine-tuning that writes a model and a verifier the semantic tier serves."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tokenomy.cache.cli import embedder
from tokenomy.cache.semantic.calibrate import Pair, Point, load_pairs
from tokenomy.cache.semantic.cross_encoder import default_model_path
from tokenomy.cache.semantic.tuning import refit
from tokenomy.cache.semantic.tuning.export import export
from tokenomy.cache.semantic.tuning.report import Estimate
from tokenomy.cache.semantic.tuning.tune import (
    TuneError,
    TuneSettings,
    final_point,
    fine_tune,
    logits,
    rule_target,
    rule_targets,
    tune,
)
from tokenomy.cache.semantic.verifier import ModelCheck

DATA = Path(__file__).parents[1] / "data" / "langcache_sample.csv"
QUICK = TuneSettings(epochs=1, folds=2, threads=2, max_steps=2, min_accepted=1, target=0.5)
"""29 pairs in 2 folds: a 0.5 target is one the nested estimate can reach there."""


def fake_embed(texts: list[str]) -> np.ndarray:
    """Unit vectors that make every pair look close (cosine ≥ 0.6) so the model decides."""
    rng = np.random.default_rng(abs(hash(tuple(texts))) % 2**32)
    base = np.ones((len(texts), 8), dtype=np.float32) + 0.1 * rng.standard_normal((len(texts), 8)).astype(np.float32)
    return base / np.linalg.norm(base, axis=1, keepdims=True)


def test_training_moves_the_logits_the_way_the_labels_point(tmp_path: Path) -> None:
    # Label every pair the opposite of the truth: a few steps must push the logits that way.
    pairs = [Pair(p.a, p.b, 1 - p.label) for p in load_pairs(DATA)]
    labels = np.array([p.label for p in pairs], dtype=bool)

    def margin(path: Path) -> float:
        forward, backward = logits(path, pairs)
        mean = (forward + backward) / 2
        return float(mean[labels].mean() - mean[~labels].mean())

    trained = tmp_path / "trained.onnx"
    export(fine_tune(default_model_path(), pairs, TuneSettings(epochs=2, learning_rate=1e-4, threads=2)), trained)
    assert margin(default_model_path()) < 0  # the shipped model disagrees with the flipped labels
    assert margin(trained) > margin(default_model_path()) + 1.0


def test_tune_writes_a_model_and_a_verifier_that_the_semantic_tier_loads(tmp_path: Path) -> None:
    pairs = load_pairs(DATA)
    report = tune(pairs, tmp_path, embedder(), QUICK)
    assert report["written"] and report["not_written_because"] is None
    assert report["pairs"] == len(pairs) and report["folds"] == 2
    assert set(report["models"]) == {
        "start, its own threshold", "start, threshold chosen per fold (nested)",
        "tuned, out of fold, threshold chosen per fold (nested)",
        "tuned, verifier refitted, both chosen per fold (nested)",
    }  # fmt: skip
    for name in ("tuned, out of fold, threshold chosen per fold (nested)",
                 "tuned, verifier refitted, both chosen per fold (nested)"):  # fmt: skip
        nested = report["models"][name]
        assert len(nested["thresholds"]) == 2 and nested["same"] == sum(p.label for p in pairs)
    verifier = json.loads((tmp_path / "verifier.json").read_text())
    shipped = json.loads((default_model_path().parent / "verifier.json").read_text())
    assert verifier["threshold"] == report["threshold"] and report["verifier"] == "refit"
    assert verifier["gates"] == "feature" and verifier["features"][-1] == "gate"
    assert len(verifier["coef"]) == len(shipped["coef"]) + 1 and verifier["coef"][:-1] != shipped["coef"]
    assert verifier["cross_encoder_ceiling"] != shipped["cross_encoder_ceiling"]
    assert json.loads((tmp_path / "report.json").read_text())["threshold"] == report["threshold"]
    per_fold = [t for t in report["validated"]["thresholds"] if t is not None]
    assert report["threshold"] == min(t for t in refit.GRID if t >= np.median(per_fold) - 1e-9)
    assert report["other_targets"] == {}  # the lower targets it estimates are all above 0.5
    check = ModelCheck(tmp_path / "cross-encoder.w8.onnx", tmp_path / "verifier.json", None, "int8")
    assert check.load(), check.failed
    assert check.accept == report["threshold"]
    same = check.decide("SQL: number of rows in orders table", [("SQL: count rows in table orders", 0.95)])
    other = check.decide("python reverse sort list", [("python sort list ascending", 0.95)])
    assert same[0] > other[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cross-encoder.w8.onnx", "report.json", "scores.csv", "verifier.json"
    ]  # fmt: skip
    with open(tmp_path / "scores.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["sentence1"], r["sentence2"], int(r["label"])) for r in rows] == [(p.a, p.b, p.label) for p in pairs]
    assert {r["fold"] for r in rows} == {"0", "1"} and all(-1 <= float(r["cosine"]) <= 1 for r in rows)


def test_with_the_shipped_verifier_only_the_threshold_and_ceiling_change(tmp_path: Path) -> None:
    report = tune(load_pairs(DATA), tmp_path, embedder(), replace(QUICK, verifier="shipped"))
    assert report["written"] and report["verifier"] == "shipped"
    verifier = json.loads((tmp_path / "verifier.json").read_text())
    shipped = json.loads((default_model_path().parent / "verifier.json").read_text())
    assert verifier["coef"] == shipped["coef"] and "gates" not in verifier
    assert verifier["threshold"] == report["threshold"]
    assert ModelCheck(tmp_path / "cross-encoder.w8.onnx", tmp_path / "verifier.json", None, "int8").load()


def test_a_threshold_that_misses_the_target_without_each_fold_writes_no_model(tmp_path: Path) -> None:
    report = tune(load_pairs(DATA), tmp_path, fake_embed, replace(QUICK, target=0.99))
    nested = report["models"]["tuned, verifier refitted, both chosen per fold (nested)"]
    assert not report["written"] and nested["precision"] < 0.99
    assert report["not_written_because"].startswith(("chosen without each fold", "in no fold does"))
    assert set(report["other_targets"]) == {"0.9", "0.95", "0.97", "0.98"}
    assert all(row["same"] == nested["same"] for row in report["other_targets"].values())
    assert not (tmp_path / "cross-encoder.w8.onnx").exists()


def test_the_final_threshold_is_the_median_of_the_folds() -> None:
    """The model ships at the median of the thresholds the nested estimate chose fold by fold (the
    next grid value up between two), not at one chosen again on the final decisions alone."""
    points = [Point(round(t / 10, 1), 10, 9, 1, 0, 0.9, 0.5) for t in range(0, 31)]

    def at(*thresholds: float | None) -> float | None:
        validated = Estimate(10, 1, 10, 0.9, (0.5, 1.0), 0.5, (0.2, 0.8), thresholds)
        point = final_point(points, validated)
        return None if point is None else point.threshold

    assert at(1.8, 1.9, 2.0) == 1.9
    assert at(2.2, 2.5, 2.8, 2.2, 2.9, 2.3) == 2.4
    assert at(2.3, 2.4) == 2.4  # 2.35: the next one up
    assert at(None, 2.0, 2.2) == 2.1 and at(2.0, None) == 2.0
    assert at(None, None) is None and at() is None
    assert at(3.5) is None  # above the grid


def test_refitting_needs_both_labels_among_the_pairs_the_verifier_sees(tmp_path: Path) -> None:
    pairs = load_pairs(DATA)
    different = {t: n for n, t in enumerate(sorted({t for p in pairs if not p.label for t in (p.a, p.b)}), 1)}

    def embed(texts: list[str]) -> np.ndarray:  # "different" pairs far apart (cosine 0): never verified
        out = np.zeros((len(texts), len(different) + 1), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, different.get(text, 0)] = 1.0
        return out

    with pytest.raises(TuneError, match="cannot be refitted"):
        tune(pairs, tmp_path, embed, QUICK)
    assert tune(pairs, tmp_path, embed, replace(QUICK, verifier="shipped"))["pairs"] == len(pairs)


def test_too_few_accepted_pairs_write_no_model(tmp_path: Path) -> None:
    report = tune(
        load_pairs(DATA), tmp_path, fake_embed, TuneSettings(epochs=1, folds=2, max_steps=1, min_accepted=10_000)
    )
    assert not report["written"] and "label more pairs" in report["not_written_because"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "scores.csv"]


@pytest.mark.parametrize(
    ("pairs", "folds", "message"),
    [
        ([Pair("a b", "a c", 1), Pair("d e", "d f", 1)], 2, "both labels"),
        ([Pair("a", "b", 1), Pair("b", "c", 0)], 2, "1 groups"),
        ([Pair("a", "b", 1), Pair("c", "d", 0)], 1, "at least 2"),
    ],
)
def test_pairs_that_cannot_be_cross_validated_are_refused(
    tmp_path: Path, pairs: list[Pair], folds: int, message: str
) -> None:
    with pytest.raises(TuneError, match=message):
        tune(pairs, tmp_path, fake_embed, TuneSettings(folds=folds))
    assert not tmp_path.joinpath("cross-encoder.w8.onnx").exists()


def test_a_second_run_reuses_the_first_runs_out_of_fold_logits(tmp_path: Path) -> None:
    pairs = load_pairs(DATA)
    first = tune(pairs, tmp_path / "first", fake_embed, replace(QUICK, verifier="shipped"))
    lines: list[str] = []
    again = tune(pairs, tmp_path / "again", fake_embed, QUICK, reuse=tmp_path / "first" / "scores.csv",
                 progress=lines.append)  # fmt: skip
    assert not any(line.startswith("fold ") for line in lines), "no fold is trained again"
    assert (
        again["auc"]["tuned cross-encoder logit, out of fold"] == first["auc"]["tuned cross-encoder logit, out of fold"]
    )
    columns = ("fold", "logit_forward", "logit_backward")
    with open(tmp_path / "first" / "scores.csv") as f, open(tmp_path / "again" / "scores.csv") as g:
        assert [[r[c] for c in columns] for r in csv.DictReader(f)] == [
            [r[c] for c in columns] for r in csv.DictReader(g)
        ]
    with pytest.raises(TuneError, match="other pairs"):
        tune(pairs[1:], tmp_path / "x", fake_embed, QUICK, reuse=tmp_path / "first" / "scores.csv")
    with pytest.raises(TuneError, match="other folds"):
        tune(pairs, tmp_path / "x", fake_embed, replace(QUICK, folds=3), reuse=tmp_path / "first" / "scores.csv")
    with pytest.raises(TuneError, match="other settings: seed 0 \\(now 1\\)"):  # it deals the folds and seeds training
        tune(pairs, tmp_path / "x", fake_embed, replace(QUICK, seed=1), reuse=tmp_path / "first" / "scores.csv")
    grouped = [replace(p, group=str(i % 2)) for i, p in enumerate(pairs)]  # now one fold per group
    with pytest.raises(TuneError, match="other folds"):
        tune(grouped, tmp_path / "x", fake_embed, QUICK, reuse=tmp_path / "first" / "scores.csv")
    with pytest.raises(TuneError, match=r"report\.json is needed"):
        tune(pairs, tmp_path / "x", fake_embed, QUICK, reuse=DATA)
    (tmp_path / "first" / "scores.csv").write_text(DATA.read_text())  # beside its report, but not its scores
    with pytest.raises(TuneError, match=r"not a scores\.csv"):
        tune(
            pairs,
            tmp_path / "x",
            fake_embed,
            replace(QUICK, verifier="shipped"),
            reuse=tmp_path / "first" / "scores.csv",
        )


def test_logits_of_another_model_or_training_are_not_reused(tmp_path: Path) -> None:
    pairs = load_pairs(DATA)
    tune(pairs, tmp_path / "first", fake_embed, replace(QUICK, verifier="shipped"))
    scores, report_path = tmp_path / "first" / "scores.csv", tmp_path / "first" / "report.json"
    report = json.loads(report_path.read_text())
    assert len(report["start_sha256"]) == 64
    for other in (replace(QUICK, epochs=2), replace(QUICK, learning_rate=3e-5), replace(QUICK, max_steps=3)):
        with pytest.raises(TuneError, match="other settings"):
            tune(pairs, tmp_path / "x", fake_embed, other, reuse=scores)
    tune(pairs, tmp_path / "y", fake_embed, replace(QUICK, target=0.6, threads=1), reuse=scores)  # not training
    report_path.write_text(json.dumps(report | {"start_sha256": "0" * 64}))  # as if trained from another model
    with pytest.raises(TuneError, match="another model"):
        tune(pairs, tmp_path / "x", fake_embed, QUICK, reuse=scores)
    report_path.unlink()
    with pytest.raises(TuneError, match=r"report\.json is needed"):
        tune(pairs, tmp_path / "x", fake_embed, QUICK, reuse=scores)


def test_the_rule_aims_above_the_required_precision_as_far_as_the_nested_estimate_needs() -> None:
    def validate(rule: float) -> Estimate:  # out of sample one point under whatever the rule aims at
        accepted = round(1000 * (1 - rule))
        return Estimate(accepted, 0, 100, round(rule - 0.01, 4), None, 0.5, (0.4, 0.6))

    assert rule_targets(0.95)[:3] == [0.95, 0.955, 0.96] and rule_targets(0.95)[-1] == 0.995
    rule, validated = rule_target(TuneSettings(target=0.95, min_accepted=10), validate)
    assert rule == 0.96 and validated.precision is not None and validated.precision >= 0.95
    rule, validated = rule_target(TuneSettings(target=0.95, min_accepted=45), validate)
    assert rule == 0.95 and validated.precision is not None and validated.precision < 0.95  # none qualifies


def test_named_groups_stay_in_one_fold_and_the_report_breaks_the_estimate_down_by_group(tmp_path: Path) -> None:
    pairs = [replace(p, group=f"writer {i % 4}") for i, p in enumerate(load_pairs(DATA))]
    report = tune(pairs, tmp_path, fake_embed, replace(QUICK, verifier="shipped"))
    with open(tmp_path / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["group"] for r in rows] == [p.group for p in pairs]
    folds_of = {g: {r["fold"] for r in rows if r["group"] == g} for g in {p.group for p in pairs}}
    assert all(len(f) == 1 for f in folds_of.values()) and len(set().union(*folds_of.values())) == 2
    assert report["named_groups"] == 4
    for row in (report["validated"], *report["models"].values()):
        by_group = row["by_group"]
        assert [g for g, *_ in by_group] == ["writer 0", "writer 1", "writer 2", "writer 3"]
        assert sum(n for _, n, _, _ in by_group) == row["accepted"]
        assert sum(f for _, _, f, _ in by_group) == row["false"]
        assert sum(s for *_, s in by_group) == row["same"]
        if row["accepted"]:
            low, high = row["precision_95_groups"]
            assert 0 <= low <= high <= 1
