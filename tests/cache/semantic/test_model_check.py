"""``verify: model`` with the real MiniLM embedder, the shipped cross-encoder and verifier."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pytest

from tokenomy.cache.semantic.context import conversation_context
from tokenomy.cache.semantic.features import gate
from tokenomy.cache.semantic.matcher import SemanticCache
from tokenomy.config.cache import SemanticCacheConfig
from tokenomy.providers.local.embeddings import MiniLMEmbedder

KEY1 = "1" * 40


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    model = MiniLMEmbedder(n_threads=1)
    model.load()
    return model


def cache(tmp_path: Path, minilm: MiniLMEmbedder, **config: object) -> SemanticCache:
    async def embed(texts: list[str]) -> npt.NDArray[np.float32]:
        return np.stack([e.vector for e in minilm.embed(list(texts))])

    settings = SemanticCacheConfig(enabled=True, index_path=str(tmp_path / "s.usearch"), **config)  # type: ignore[arg-type]
    return SemanticCache(settings, embed)


def ctx(text: str) -> tuple[str, str]:
    found = conversation_context("t/a/", "fast", {"messages": [{"role": "user", "content": text}]})
    assert found is not None
    return found


async def test_paraphrase_hits_and_near_misses_do_not(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    semantic = cache(tmp_path, minilm)
    await semantic.add(*ctx("What is the capital city of Canada?"), KEY1)
    hit = await semantic.lookup(*ctx("capital city of canada"))
    assert hit is not None and hit.key == KEY1 and hit.decision is not None and hit.decision >= semantic.check.accept  # type: ignore[union-attr]
    assert await semantic.lookup(*ctx("What is the population of Canada?")) is None  # other attribute
    assert await semantic.lookup(*ctx("What is the capital of Australia?")) is None
    semantic.close()


async def test_accept_threshold_is_respected(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    semantic = cache(tmp_path, minilm)
    await semantic.add(*ctx("What is the capital city of Canada?"), KEY1)
    hit = await semantic.lookup(*ctx("capital city of canada"))
    assert hit is not None and hit.decision is not None
    assert await semantic.lookup(*ctx("capital city of canada"), accept=hit.decision + 0.01) is None
    strict = cache(tmp_path / "b", minilm, accept=hit.decision + 0.01)
    await strict.add(*ctx("What is the capital city of Canada?"), KEY1)
    assert await strict.lookup(*ctx("capital city of canada")) is None
    same = await strict.lookup(*ctx("What's the capital city of Canada"))  # equal but for case and punctuation
    assert same is not None and same.decision == float("inf")
    semantic.close()
    strict.close()


async def test_other_language_never_matches(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    semantic = cache(tmp_path, minilm)
    await semantic.add(*ctx("What is the capital city of Canada?"), KEY1)
    assert await semantic.lookup(*ctx("Quelle est la capitale du Canada ?")) is None
    semantic.close()


def test_gates() -> None:
    assert gate("convert 5 miles to km", "convert 5 miles to kilometers")
    assert not gate("convert 5 miles to km", "convert 6 miles to km")  # numbers differ
    assert not gate("convert EUR to USD", "convert USD to EUR")  # roles swap
    assert not gate("is coffee healthy", "is coffee not healthy")  # one side negates


async def test_unloadable_model_turns_the_tier_off(
    tmp_path: Path, minilm: MiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    semantic = cache(tmp_path, minilm, model_path=str(broken))
    await semantic.add(*ctx("What is the capital of Canada?"), KEY1)
    with caplog.at_level(logging.ERROR, logger="tokenomy.cache"):
        assert await semantic.lookup(*ctx("What is the capital of Canada?")) is None
    assert semantic.off and "semantic cache off" in caplog.text
    semantic.close()


def test_verifier_reading_both_orders(tmp_path: Path) -> None:
    """A verifier file with ``cross_encoder_orders: 2`` is given the mean of both orders' logits."""
    import json

    from tokenomy.cache.semantic.verifier import ModelCheck, default_path

    doc = json.loads(default_path().read_text())
    assert doc["cross_encoder_orders"] == 2  # the shipped verifier reads both orders
    path, single = tmp_path / "verifier.json", tmp_path / "one-order.json"
    path.write_text(json.dumps({**doc, "cross_encoder_orders": 2}))
    single.write_text(json.dumps({**doc, "cross_encoder_orders": 1}))
    one, two = ModelCheck(None, single, None), ModelCheck(None, path, None)
    assert one.load() and two.load()
    assert one.verifier is not None and two.verifier is not None
    assert (one.verifier.orders, two.verifier.orders) == (1, 2)
    query, stored = "capital city of canada", "What is the capital city of Canada?"
    forward, backward = one._encoder.score([(query, stored), (stored, query)])
    assert forward != backward
    got = two.decisions(query, [(stored, 0.9)])[0]
    assert got == pytest.approx(two.verifier.decision(query, stored, 0.9, (forward + backward) / 2), abs=1e-4)
    assert one.decisions(query, [(stored, 0.9)])[0] == pytest.approx(
        one.verifier.decision(query, stored, 0.9, forward), abs=1e-4
    )
    path.write_text(json.dumps({**doc, "cross_encoder_orders": 3}))
    broken = ModelCheck(None, path, None)
    assert not broken.load() and broken.failed is not None and "cross_encoder_orders" in broken.failed
    path.write_text(json.dumps({**doc, "cross_encoder_ceiling": "high"}))
    unreadable = ModelCheck(None, path, None)
    assert not unreadable.load() and unreadable.failed is not None and "high" in unreadable.failed


@pytest.mark.parametrize("marked", [True, False])
def test_a_candidates_logit_does_not_depend_on_the_others(marked: bool, tmp_path: Path) -> None:
    """A candidate's logit is the same whatever else is scored with it. The shipped weight-only
    8-bit model says in its ONNX metadata that it quantizes activations per row, and a lookup's
    pairs run as one batch (one session call); a model without that mark (a dynamically quantized
    int8 one, with per-batch activation scales) has each pair run alone."""
    import onnx

    from tokenomy.cache.semantic.cross_encoder import CrossEncoder, default_model_path

    path = default_model_path()
    if not marked:
        model = onnx.load(str(path))
        del model.metadata_props[:]
        path = tmp_path / "unmarked.onnx"
        onnx.save(model, str(path))
    encoder = CrossEncoder(path)
    encoder.load()
    assert encoder.batched is marked
    calls = []
    session = encoder._session

    class Counting:
        def run(self, *args: object) -> object:
            calls.append(1)
            return session.run(*args)

    encoder._session = Counting()
    query = "capital city of canada"
    others = ["What is the capital city of Canada?", "How many people live in Toronto, Ontario, this year?"]
    alone = encoder.score([(query, others[0])])[0]
    both = encoder.score([(query, others[0]), (query, others[1])])
    assert len(calls) == (2 if marked else 3)
    assert both[0] == pytest.approx(alone, abs=1e-4)
    assert encoder.score([(query, others[1]), (query, others[0])])[1] == pytest.approx(alone, abs=1e-4)


def test_a_candidate_that_cannot_reach_the_threshold_skips_the_cross_encoder() -> None:
    """With the decision a hit needs given, a candidate whose decision would stay below it even with
    the cross-encoder's logits at the verifier's ceiling is rejected without running the model; one
    whose first order's logit already rules it out (the second order at the ceiling) skips the
    second order; one that can still pass is read in both orders. Without ``needed``
    (calibration) every gated candidate is read in both orders."""
    from tokenomy.cache.semantic.verifier import ModelCheck

    check = ModelCheck(None, None, None)
    assert check.load() and check.verifier is not None
    verifier = check.verifier
    assert verifier.orders == 2 and verifier.ceiling < float("inf")
    calls: list[list[tuple[str, str]]] = []
    encoder = check._encoder
    score = encoder.score

    def counting(pairs: list[tuple[str, str]]) -> list[float]:
        calls.append(pairs)
        return score(pairs)

    encoder.score = counting  # type: ignore[method-assign]
    query = "what is the capital city of canada"
    far = ("which river runs through the capital of canada", 0.62)  # unreachable before any model
    ruled_out = ("what is the largest city of canada", 0.85)  # reachable, until its first order is read
    near = ("capital city of canada?", 0.97)
    needed = verifier.threshold
    assert verifier.decision(query, far[0], far[1], verifier.ceiling) < needed
    assert verifier.decision(query, ruled_out[0], ruled_out[1], verifier.ceiling) >= needed

    assert check.decisions(query, [far], needed) == [float("-inf")] and calls == []
    got = check.decisions(query, [far, ruled_out, near], needed)
    assert calls == [[(query, ruled_out[0]), (query, near[0])], [(near[0], query)]]
    assert got[:2] == [float("-inf")] * 2 and got[2] >= needed
    calls.clear()
    unpruned = check.decisions(query, [far, ruled_out], None)
    assert len(calls) == 2 and all(len(c) == 2 for c in calls)
    assert all(d > float("-inf") for d in unpruned)


@pytest.mark.parametrize("arithmetic", ["int8", "float32"])
def test_two_threads_give_the_logits_of_one(arithmetic: Literal["int8", "float32"]) -> None:
    """The cross-encoder runs on two ONNX Runtime threads where there are two cores, spinning only within
    a run; each pair's logit, alone or in a lookup's batch, is exactly the one-thread logit the verifier
    was calibrated with, however the threads wait."""
    from tokenomy.cache.semantic.cross_encoder import CrossEncoder

    default = CrossEncoder(arithmetic=arithmetic)
    assert default.threads == min(2, os.cpu_count() or 1)
    assert default.spinning == "in-run"
    one = CrossEncoder(arithmetic=arithmetic, threads=1)
    twos = [CrossEncoder(arithmetic=arithmetic, threads=2, spinning=s) for s in ("in-run", "never", "always")]
    for encoder in (one, *twos):
        encoder.load()
    query = "capital city of canada"
    others = ["What is the capital city of Canada?", "How many people live in Toronto, Ontario, this year?",
              "Which river runs through Ottawa?"]  # fmt: skip
    pairs = [(query, o) for o in others] + [(o, query) for o in others]
    for two in twos:
        assert two.score(pairs) == one.score(pairs), two.spinning
        assert two.score(pairs[:1]) == one.score(pairs[:1]), two.spinning
