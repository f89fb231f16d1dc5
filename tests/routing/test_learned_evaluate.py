"""Training and the cost-quality evaluation: baselines, oracle, curve, random-mix line."""

from __future__ import annotations

import numpy as np
import pytest
from tests.routing.learned_helpers import FAST, ROUTERBENCH, fake_embed, routerbench_rows

from tokenomy.routing.learned import OutcomesError, evaluate, load_outcomes, train_router
from tokenomy.routing.learned.evaluate import POSITIONS, Point, mix_accuracy, mix_frontier, router_embeddings
from tokenomy.routing.learned.outcomes import parse_rows


def test_json_shape_baselines_and_oracle_match_an_independent_count() -> None:
    outcomes = load_outcomes(ROUTERBENCH)
    router = train_router(outcomes, fake_embed, FAST)
    test = outcomes.split("test")
    result = evaluate(router, test, router_embeddings(router, fake_embed, test.prompts)).as_json()
    assert set(result) == {"rows", "seen_in_training", "baselines", "oracle", "curve", "default_knob", "tasks"}
    assert set(result["oracle"]) == {"accuracy", "cost_usd"}
    assert all(set(p) == {"knob", "accuracy", "cost_usd"} for p in result["curve"])
    assert [p["knob"] for p in result["curve"]] == list(POSITIONS)
    train_prompts = set(outcomes.split("train").prompts)
    assert result["seen_in_training"] == sum(p in train_prompts for p in test.prompts) == 1  # the sample has one
    assert [t["task"] for t in result["tasks"]] == ["arc-challenge", "mbpp", "winogrande"]
    assert sum(t["rows"] for t in result["tasks"]) == result["rows"]
    for task in result["tasks"]:
        assert sum(task["picks"].values()) == pytest.approx(1.0) and 0 <= task["accuracy"] <= 1

    header, raw = routerbench_rows()
    models = [c.removesuffix("|total_cost") for c in header if c.endswith("|total_cost")]
    rows = [r for r in raw if r["split"] == "test" and all(r[m] != "" for m in models)]
    assert set(result["baselines"]) == set(models)
    for m in models:
        assert set(result["baselines"][m]) == {"accuracy", "cost_usd"}
        assert result["baselines"][m]["accuracy"] == pytest.approx(sum(float(r[m]) for r in rows) / len(rows))
        assert result["baselines"][m]["cost_usd"] == pytest.approx(sum(float(r[m + "|total_cost"]) for r in rows))
    right = [[m for m in models if float(r[m]) == 1.0] for r in rows]
    oracle_cost = sum(
        min(float(r[m + "|total_cost"]) for m in (ok or models)) for r, ok in zip(rows, right, strict=True)
    )
    assert result["oracle"]["accuracy"] == pytest.approx(sum(1 for ok in right if ok) / len(rows))
    assert result["oracle"]["cost_usd"] == pytest.approx(oracle_cost)
    assert all(result["oracle"]["accuracy"] >= b["accuracy"] for b in result["baselines"].values())
    cheapest = min(result["baselines"].values(), key=lambda b: b["cost_usd"])
    assert result["curve"][0]["cost_usd"] == pytest.approx(cheapest["cost_usd"])  # knob 0: the cheapest model


def synthetic(n: int = 240, seed: int = 3) -> list[tuple[int, dict[str, object]]]:
    """Three models; cost proportional to prompt length; "math" prompts favour the big model."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = ["math", "chat"][i % 2]
        words = int(rng.integers(5, 60))
        prompt = f"{kind} question {i}: " + " ".join(f"w{int(x)}" for x in rng.integers(0, 50, words))
        odds = (
            {"small": 0.3, "medium": 0.6, "big": 0.9} if kind == "math" else {"small": 0.8, "medium": 0.85, "big": 0.9}
        )
        row: dict[str, object] = {"prompt": prompt}
        for model, rate in (("small", 1.0), ("medium", 3.0), ("big", 20.0)):
            row[model] = float(rng.uniform() < odds[model])
            row[model + "|total_cost"] = rate * len(prompt) * 1e-6
        rows.append((i + 2, row))
    return rows


def test_curve_grows_with_the_knob_and_beats_the_random_mix_when_costs_are_known() -> None:
    outcomes = parse_rows(synthetic(), "synthetic")
    router = train_router(outcomes, fake_embed, FAST)
    test = outcomes.split("test")
    result = evaluate(router, test, router_embeddings(router, fake_embed, test.prompts))
    costs = np.array([p.cost_usd for p in result.curve])
    # mixing picks rows by their hash: on 50 rows the cost grows with the knob up to a few rows' noise
    assert costs[0] == costs.min() and np.all(np.diff(costs) >= -0.1 * costs.max())
    assert result.curve[0].cost_usd == pytest.approx(result.baselines["small"].cost_usd)
    hull = mix_frontier(result.baselines)
    assert any(p.accuracy > mix_accuracy(hull, p.cost_usd) + 0.02 for p in result.curve)
    assert 0 <= router.threshold <= 1 and result.at(router.threshold).knob == round(router.threshold, 2)


def test_mix_frontier_is_the_upper_hull_from_cheapest_to_best() -> None:
    points = {
        "a": Point(0.5, 1.0),
        "dominated": Point(0.45, 2.0),
        "under": Point(0.55, 4.0),  # below the a-c line
        "c": Point(0.8, 5.0),
        "best": Point(0.9, 20.0),
        "worse-and-dearer": Point(0.7, 30.0),
    }
    hull = mix_frontier(points)
    assert hull == [(1.0, 0.5), (5.0, 0.8), (20.0, 0.9)]
    assert mix_accuracy(hull, 3.0) == pytest.approx(0.65)
    assert mix_accuracy(hull, 0.5) == 0.5 and mix_accuracy(hull, 99.0) == 0.9


def test_training_needs_enough_rows_and_known_models() -> None:
    outcomes = parse_rows(synthetic(20), "tiny")
    with pytest.raises(OutcomesError, match="training rows; the router needs at least 20"):
        train_router(outcomes, fake_embed, FAST)
    router = train_router(parse_rows(synthetic(), "s"), fake_embed, FAST)
    other = load_outcomes(ROUTERBENCH)
    with pytest.raises(OutcomesError, match=r"the router routes to .*'small'.* which the outcomes file has no columns"):
        evaluate(router, other, router_embeddings(router, fake_embed, other.prompts))
