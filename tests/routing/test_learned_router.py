"""Serving: the decision rules, the cost-success frontier, candidates, errors and decision latency."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.routing.learned_helpers import FAST, ROUTERBENCH, fake_embed

from tokenomy.routing.learned import LearnedRouter, load_outcomes, train_router
from tokenomy.routing.learned.features import CHEAP_FEATURES, cheap_features
from tokenomy.routing.learned.knob import Knob, Vertex
from tokenomy.routing.learned.preamble import Preambles
from tokenomy.routing.learned.router import frontier, select
from tokenomy.routing.learned.scorers import LinearScorer

# name: (fixed predicted success, cost per query)
FIXED = {"cheap": (0.6, 1.0), "mid": (0.8, 2.0), "beaten": (0.82, 5.5), "pricey": (0.9, 10.0)}


def fixed_router(rule: str = "margin", threshold: float = 0.9) -> LearnedRouter:
    """A router whose predictions ignore the prompt: ``FIXED`` success and cost per model; its knob
    has one operating point, the rule at ``threshold``."""
    models = list(FIXED)
    p = np.array([FIXED[m][0] for m in models])
    n = len(models)
    scorer = LinearScorer(
        np.zeros((384 + 1 + len(CHEAP_FEATURES), n)), np.log(p / (1 - p)), np.ones(n), np.zeros(n), 384, 1
    )
    return LearnedRouter(
        models=models,
        family="logistic",
        scorer=scorer,
        preambles=Preambles([]),
        knob=Knob((Vertex("threshold", threshold, 0.0, 0.0),), 0.0),
        cost_base=np.array([FIXED[m][1] for m in models]),
        cost_per_char=np.zeros(n),
        rule="absolute" if rule == "absolute" else "margin",
    )


EMB = np.zeros(384, dtype=np.float32)


def test_frontier_drops_models_a_mix_beats() -> None:
    success = np.array([[0.6, 0.8, 0.82, 0.9], [0.6, 0.5, 0.82, 0.9]])
    cost = np.array([[1.0, 2.0, 5.5, 10.0]] * 2)
    # "beaten" lies under the mid-pricey line; in row 2 "mid" is dominated by "cheap"
    assert frontier(success, cost).tolist() == [[True, True, False, True], [True, False, True, True]]


@pytest.mark.parametrize(
    ("threshold", "expected"), [(1.0, "pricey"), (0.95, "pricey"), (0.92, "pricey"), (0.9, "mid"), (0.5, "cheap")]
)
def test_margin_rule_picks_the_cheapest_frontier_model_near_the_best(threshold: float, expected: str) -> None:
    choice = fixed_router(threshold=threshold).choose(EMB, "What is 2+2?")
    assert choice.model == expected
    assert choice.success.keys() == FIXED.keys()
    assert math.isclose(choice.success["mid"], 0.8)
    assert expected in choice.reason


@pytest.mark.parametrize(("threshold", "expected"), [(0.95, "pricey"), (0.85, "pricey"), (0.7, "mid"), (0.5, "cheap")])
def test_absolute_rule_falls_back_to_the_best_predicted(threshold: float, expected: str) -> None:
    assert fixed_router("absolute", threshold).choose(EMB, "hi").model == expected


def test_candidates() -> None:
    router = fixed_router(threshold=0.9)
    assert router.choose(EMB, "hi").model == "mid"
    choice = router.choose(EMB, "hi", candidates=["pricey", "cheap"])
    assert choice.model == "pricey" and list(choice.success) == ["pricey", "cheap"]
    assert router.choose(EMB, "hi", candidates=["cheap"]).model == "cheap"
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['gpt-9'\] for this router; it knows: cheap, mid"):
        router.choose(EMB, "hi", candidates=["mid", "gpt-9"])
    with pytest.raises(ValueError, match="no candidate models"):
        router.choose(EMB, "hi", candidates=[])


def test_select_is_monotone_in_estimated_cost() -> None:
    rng = np.random.default_rng(1)
    success = rng.uniform(size=(300, 6))
    cost = np.sort(rng.uniform(size=(300, 6)), axis=1)
    eligible = frontier(success, cost)
    for rule in ("margin", "absolute"):
        spent = [cost[np.arange(300), select(success, cost, t / 20, rule, eligible)].sum() for t in range(21)]
        assert spent == sorted(spent)
    top = select(success, cost, 1.0, "margin", eligible)
    assert (success[np.arange(300), top] == success.max(axis=1)).all()
    assert (select(success, cost, 0.0, "margin", eligible) == 0).all()


def test_cheap_features_are_cheap_and_sensible() -> None:
    code = cheap_features("def f(x):\n    return x[0] + 1;\n")
    mcq = cheap_features("Which is right?\nA) one\nB) two\nAnswer:")
    names = list(CHEAP_FEATURES)
    assert code[names.index("code_markers")] == 1 and mcq[names.index("code_markers")] == 0
    assert mcq[names.index("log_option_lines")] == pytest.approx(math.log(3))
    assert mcq[names.index("log_question_marks")] == pytest.approx(math.log(2))
    assert np.isfinite(cheap_features("")).all()


def test_choose_strips_the_preamble_and_is_deterministic_per_prompt() -> None:
    """(Decision time is measured by bench/routing/learned_router.py, not asserted here.)"""
    outcomes = load_outcomes(ROUTERBENCH)
    router = train_router(outcomes, fake_embed, FAST)
    prompt = next(p for p in outcomes.prompts if p.startswith(router.preambles.texts[0]))
    texts = router.embedding_texts(prompt)
    assert texts == [prompt[len(router.preambles.texts[0]) :]]
    first = router.choose(fake_embed(texts), prompt)
    assert all(router.choose(fake_embed(texts), prompt) == first for _ in range(20))
    assert first.model in router.models and first.reason.startswith("knob ")


def test_a_model_vertex_outside_the_candidates_keeps_its_price_level() -> None:
    router = fixed_router(threshold=1.0)
    router.knob = Knob((Vertex("model", 0, 1.0, 0.6), Vertex("threshold", 1.0, 10.0, 0.9)), 0.0)
    assert router.choose(EMB, "hi").model == "cheap"  # the cheap model alone
    assert router.choose(EMB, "hi", candidates=["mid", "pricey"]).model == "mid"  # nearest in cost, not the best
    assert router.choose(EMB, "hi", candidates=["mid", "pricey"], threshold=1.0).model == "pricey"
