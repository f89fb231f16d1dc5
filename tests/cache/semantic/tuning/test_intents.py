"""Pairs from intent-labelled questions: nearest neighbours, labelled by intent, balanced on request."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from tokenomy.cache.semantic.tuning.intents import intent_pairs, neighbour_pairs, read_questions


def unit(rows: list[list[float]]) -> np.ndarray:
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_each_question_is_paired_with_its_nearest_others_once() -> None:
    vectors = unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    assert neighbour_pairs(vectors, 1) == [(0, 1), (2, 3)]
    assert len(neighbour_pairs(vectors, 3)) == 6  # every pair, each once
    assert neighbour_pairs(vectors[:1], 2) == []


def test_labels_are_same_intent_and_balance_keeps_equal_counts() -> None:
    labelled = {"card lost": "lost", "lost my card": "lost", "card stolen": "stolen", "stolen card": "stolen",
                "card arrived?": "arrival"}  # fmt: skip
    vectors = unit([[1, 0, 0], [0.95, 0.05, 0], [0.8, 0.2, 0], [0.78, 0.22, 0], [0, 0, 1]])
    pairs = intent_pairs(labelled, vectors, k=2, balance=False)
    assert ("card lost", "lost my card", 1) in pairs and ("card lost", "card stolen", 0) in pairs
    balanced = intent_pairs(labelled, vectors, k=2, balance=True)
    assert sum(y for *_, y in balanced) * 2 == len(balanced)
    assert set(balanced) <= set(pairs)


def test_questions_are_read_from_csv_or_gzip_and_a_text_under_two_intents_is_dropped(tmp_path: Path) -> None:
    text = "text,intent\nwhere is my card,card_arrival\nwhere is my card,lost_card\nnew pin,change_pin\n ,x\n"
    (tmp_path / "q.csv").write_text(text)
    with gzip.open(tmp_path / "q.csv.gz", "wt") as f:
        f.write(text)
    for name in ("q.csv", "q.csv.gz"):
        assert read_questions(tmp_path / name, "intent") == {"new pin": "change_pin"}
    with pytest.raises(ValueError, match="no category column"):
        read_questions(tmp_path / "q.csv", "category")
