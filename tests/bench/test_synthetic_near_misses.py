"""The near misses made from training sentences (a probe of the cross-encoder's training)."""

from __future__ import annotations

from bench.cache.synthetic_near_misses import corpus_facts, make_pairs


def test_pairs_change_one_content_word_or_frame_the_question() -> None:
    sentences = ["What's the weather in Sydney today?", "Is fried food unhealthy?", "Is pan fried fish good?"]
    vocab, before = corpus_facts(sentences, 1)
    assert "what's" not in vocab and "the" not in vocab and "sydney" in vocab
    assert before["fried"] == {"pan"}
    near = {"sydney": ["melbourne"], "today": ["tomorrow"], "food": ["fish"], "unhealthy": ["good"]}
    pairs = make_pairs(sentences, near, before, seed=0)
    again = make_pairs(sentences, near, before, seed=0)
    assert pairs == again  # deterministic for a seed
    for first, second, label, kind in pairs:
        assert first in sentences and second != first
        if kind == "replaced":
            old, new = set(first.split()) - set(second.split()), set(second.split()) - set(first.split())
            assert label == 0 and len(old) == len(new) == 1 and ("What's" in second) == ("What's" in first)
        elif kind == "added":
            assert label == 0 and len(second.split()) == len(first.split()) + 1 and "pan fried" in second.lower()
        else:
            assert kind == "framed" and label == 1 and first[1:] in second
    assert {kind for *_, kind in make_pairs(sentences * 20, near, before, seed=1)} == {"replaced", "added", "framed"}
