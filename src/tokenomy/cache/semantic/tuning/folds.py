"""Grouped folds for cross-validation on question pairs: a question never sits on both sides of a split.

Pairs are grouped by the connected components of the graph whose nodes are questions (compared
case-insensitively, trimmed) and whose edges are pairs; whole groups are dealt to folds in a seeded
random order. Otherwise a model could be measured on a question it was trained on, paired anew.
Where pairs also name a group of their own (a writer, a source), pairs of one such group are joined
too, so each fold's estimate is one for groups the model never saw.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def groups(pairs: Sequence[tuple[str, str]], named: Sequence[str] = ()) -> list[int]:
    """The connected component of each (question, question) pair, numbered in order of first appearance;
    ``named``: each pair's own group ("" = none), whose pairs are joined as well."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def question(text: str) -> str:  # "q" and "g" keep questions and group names apart
        return "q" + text.strip().lower()

    for a, b in pairs:
        parent[find(question(a))] = find(question(b))
    for (a, _), name in zip(pairs, named, strict=False):
        if name:
            parent[find(question(a))] = find("g" + name)
    roots = [find(question(a)) for a, _ in pairs]
    ids = {r: i for i, r in enumerate(dict.fromkeys(roots))}
    return [ids[r] for r in roots]


def fold_of(group_ids: Sequence[int], folds: int, seed: int) -> list[int]:
    """The fold (0 to ``folds`` - 1) of each pair: its group's, groups dealt round-robin in a shuffled order."""
    order = sorted(set(group_ids))
    random.Random(seed).shuffle(order)
    fold = {g: i % folds for i, g in enumerate(order)}
    return [fold[g] for g in group_ids]
