"""Grouped folds: a question (up to case and spaces) never sits on both sides of a split."""

from __future__ import annotations

from tokenomy.cache.semantic.tuning.folds import fold_of, groups


def test_pairs_sharing_a_question_share_a_group() -> None:
    pairs = [("a", "b"), ("B ", "c"), ("d", "e"), ("e", "f"), ("g", "h")]
    assert groups(pairs) == [0, 0, 1, 1, 2]


def test_every_group_sits_in_one_fold_and_the_deal_is_seeded() -> None:
    pairs = [(f"q{i}", f"q{i + 1}") if i % 3 else (f"q{i}", f"r{i}") for i in range(60)]
    ids = groups(pairs)
    folds = fold_of(ids, 4, seed=7)
    assert folds == fold_of(ids, 4, seed=7) and folds != fold_of(ids, 4, seed=8)
    assert set(folds) == {0, 1, 2, 3}
    for group in set(ids):
        assert len({f for f, g in zip(folds, ids, strict=True) if g == group}) == 1
    questions = [
        {q.lower() for (a, b), f in zip(pairs, folds, strict=True) if f == k for q in (a, b)} for k in range(4)
    ]
    assert all(not (questions[i] & questions[j]) for i in range(4) for j in range(i + 1, 4))
