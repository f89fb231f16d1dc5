"""Router families chosen by cross-validation, and the checks on training rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tests.routing.learned_helpers import FAST, fake_embed

from tokenomy.routing.learned import OutcomesError, evaluate, train_router
from tokenomy.routing.learned.evaluate import mix_accuracy, mix_frontier, router_embeddings
from tokenomy.routing.learned.outcomes import parse_rows
from tokenomy.routing.learned.train import fold_ids

PREAMBLE = "You are a careful assistant. Answer the question below in one word.\nExamples follow.\nQ: hi\nA: hello\n\n"


def rows(
    n: int = 300, models: tuple[str, ...] = ("small", "big"), seed: int = 1
) -> list[tuple[int, dict[str, object]]]:
    """Every prompt opens with the same preamble; whether the small model gets it right depends on
    the words of the question after it (``hard`` topics), which only a router that reads past the
    preamble can see."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        hard = i % 3 == 0
        topic = " ".join(f"{'hard' if hard else 'easy'}{int(w)}" for w in rng.integers(0, 6, 8))
        row: dict[str, object] = {"prompt": f"{PREAMBLE}Q{i}: {topic}?", "split": "train" if i % 5 else "test"}
        for j, model in enumerate(models):
            strong = j == len(models) - 1
            row[model] = float(rng.uniform() < (0.95 if strong or not hard else 0.15))
            row[model + "|total_cost"] = 10.0**j
        out.append((i + 2, row))
    return out


@pytest.mark.parametrize("family", ["logistic", "knn", "mf", "winprob"])
def test_every_family_reads_the_question_after_the_preamble(family: str) -> None:
    outcomes = parse_rows(rows(), "synthetic")
    router = train_router(outcomes, fake_embed, dataclasses.replace(FAST, family=family))
    assert router.family == family and len(router.preambles.texts) == 1
    assert router.meta["families"][family]["area"] > router.meta["random_mix_area"] + 0.05
    test = outcomes.split("test")
    result = evaluate(router, test, router_embeddings(router, fake_embed, test.prompts))
    hull = mix_frontier(result.baselines)
    point = result.at(router.threshold)
    big = result.baselines["big"]
    assert point.accuracy >= 0.9 * big.accuracy and point.cost_usd <= 0.75 * big.cost_usd
    assert point.accuracy > mix_accuracy(hull, point.cost_usd) + 0.05


def test_auto_picks_the_family_with_the_largest_out_of_fold_area() -> None:
    router = train_router(parse_rows(rows(models=("small", "mid", "big")), "s"), fake_embed, FAST)
    families = router.meta["families"]
    assert set(families) == {"logistic", "knn", "mf"}  # winprob needs exactly two models
    assert router.family == max(families, key=lambda f: families[f]["area"])
    assert "largest out-of-fold cost-quality area" in router.meta["family_reason"]
    with pytest.raises(ValueError, match="winprob family routes between exactly two models"):
        train_router(
            parse_rows(rows(models=("a", "b", "c")), "s"), fake_embed, dataclasses.replace(FAST, family="winprob")
        )


def test_max_cost_share_sets_a_cheaper_default() -> None:
    outcomes = parse_rows(rows(), "s")
    quality = train_router(outcomes, fake_embed, dataclasses.replace(FAST, family="logistic"))
    cheap = train_router(outcomes, fake_embed, dataclasses.replace(FAST, family="logistic", max_cost_share=0.2))
    assert cheap.threshold < quality.threshold and "within 20%" in cheap.meta["default_reason"]


def test_duplicate_prompts_share_a_fold() -> None:
    prompts = [f"p{i % 50}" for i in range(200)]
    ids = fold_ids(prompts, 5, 0)
    for text in set(prompts):
        assert len({ids[i] for i, p in enumerate(prompts) if p == text}) == 1
    assert sorted(np.bincount(ids).tolist()) == [40] * 5


def _set(data: list[tuple[int, dict[str, object]]], model: str, value: float) -> list[tuple[int, dict[str, object]]]:
    for _, row in data:
        row[model] = value
    return data


def test_bad_training_rows_get_clear_errors() -> None:
    one = [(n, {k: v for k, v in r.items() if not k.startswith("small")}) for n, r in rows()]
    with pytest.raises(OutcomesError, match=r"one model \(big\); a router chooses between at least two"):
        train_router(parse_rows(one, "s"), fake_embed, FAST)
    constant = _set(_set(rows(), "small", 1.0), "big", 1.0)
    with pytest.raises(OutcomesError, match="every outcome in the 240 training rows is 1: nothing tells the models"):
        train_router(parse_rows(constant, "s"), fake_embed, FAST)
    agree = rows()
    for _, row in agree:
        row["big"] = row["small"]
    with pytest.raises(OutcomesError, match="the models' outcomes agree on every one of the 240 training prompts"):
        train_router(parse_rows(agree, "s"), fake_embed, FAST)


def test_degenerate_and_leaky_training_rows_get_warnings() -> None:
    data = _set(rows(models=("zero", "small", "big")), "zero", 0.0)
    data[1][1]["prompt"] = data[0][1]["prompt"]  # a test prompt repeated in training
    data[2][1]["prompt"] = data[3][1]["prompt"]  # a training prompt repeated in training
    warnings: list[str] = []
    train_router(parse_rows(data, "s"), fake_embed, FAST, warn=warnings.append)
    assert any("model 'zero' has no success in the 240 training rows" in w for w in warnings)
    assert any("1 training prompts (split 'train') also appear in other splits" in w for w in warnings)
    assert any("1 training rows repeat an earlier prompt" in w for w in warnings)
    warnings.clear()
    train_router(parse_rows(_set(rows(), "big", 1.0), "s"), fake_embed, FAST, warn=warnings.append)
    assert warnings == [
        "model 'big' has the same outcome (1) on all 240 training rows: its predicted success is a constant"
    ]


def test_cross_validation_runs_on_a_sample_of_a_large_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import tokenomy.routing.learned.train as train_module

    monkeypatch.setattr(train_module, "CV_MAX_ROWS", 120)
    outcomes = parse_rows(rows(400), "s")
    router = train_router(outcomes, fake_embed, dataclasses.replace(FAST, family="knn"))
    assert 100 <= router.meta["cv"]["rows"] <= 120 and router.meta["rows"] == 320
    assert len(router.scorer.ref) == 320  # type: ignore[union-attr]  # the final fit uses every training row
    test = outcomes.split("test")
    point = evaluate(router, test, router_embeddings(router, fake_embed, test.prompts)).at(router.threshold)
    assert point.accuracy >= 0.85
