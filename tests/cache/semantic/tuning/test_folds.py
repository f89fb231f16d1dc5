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


def test_pairs_naming_one_group_share_a_group_and_unnamed_ones_keep_their_own() -> None:
    pairs = [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h"), ("b", "i")]
    # writer 1 joins a-b with c-d; e-f and g-h name none; b-i joins writer 1 through its question
    assert groups(pairs, ["1", "1", "", "", ""]) == [0, 0, 1, 2, 0]
    assert groups(pairs, ["1", "2", "2", "", ""]) == [0, 1, 1, 2, 0]


def test_a_group_name_never_joins_a_question_of_the_same_text() -> None:
    assert groups([("x", "y"), ("gx", "z")], ["", ""]) == [0, 1]
    assert groups([("x", "y"), ("1", "z")], ["1", ""]) == [0, 1]
