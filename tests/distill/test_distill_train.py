"""The student's training on plain vectors: two-class heads, calibration and the abstention threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tokenomy.distill.data import Examples
from tokenomy.distill.student import load_student
from tokenomy.distill.train import choose_threshold, train_student


def test_a_two_label_student_scores_both_labels() -> None:
    rng = np.random.default_rng(0)
    centres = {"yes": rng.normal(size=16), "no": rng.normal(size=16)}
    labels = ["yes", "no"] * 30
    vectors = np.stack([centres[label] + rng.normal(scale=0.3, size=16) for label in labels]).astype(np.float32)
    texts = [f"t{i}" for i in range(len(labels))]
    student = train_student(Examples(texts, labels), lambda batch: vectors[[int(t[1:]) for t in batch]])
    assert student.labels == ["no", "yes"] and student.weights.shape == (2, 16)
    predictions = student.predict(vectors)
    assert [p.label for p in predictions] == labels
    assert all(0.5 < p.confidence <= 1 for p in predictions)


def test_the_threshold_is_the_lowest_confidence_meeting_the_target() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.6])
    right = np.array([True, True, True, False, True])
    assert choose_threshold(confidence, right, 1.0) == 0.9  # the top three are all right
    assert choose_threshold(confidence, right, 0.8) == 0.6  # 4 of 5 right overall
    assert choose_threshold(confidence, np.zeros(5, dtype=bool), 0.5) > 1  # never right: always abstain


def test_the_ngram_head_carries_what_the_vectors_miss(tmp_path: Path) -> None:
    # the vectors are noise; only the words tell the labels apart, so the blend must lean on the n-gram head
    rng = np.random.default_rng(1)
    words = {"refund": ["refund my purchase", "money back please"], "card": ["lost my card", "card was stolen"]}
    texts = [f"{phrase} {i}" for i in range(20) for label in words for phrase in words[label]]
    labels = [label for _ in range(20) for label in words for _ in words[label]]
    vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
    row = {t: i for i, t in enumerate(texts)}
    student = train_student(Examples(texts, labels), lambda batch: vectors[[row[t] for t in batch]], lexical=True)
    assert student.lexical is not None and student.info["lexical_weight"] > 0
    student.save(tmp_path)
    loaded = load_student(tmp_path)
    assert loaded.lexical is not None and json.loads((tmp_path / "student.json").read_text())["format_version"] == 2
    unseen = ["please refund my purchase", "my card was stolen"]
    noise = rng.normal(size=(2, 8)).astype(np.float32)
    assert [p.label for p in loaded.predict(noise, unseen)] == ["refund", "card"]
    np.testing.assert_allclose(loaded.probabilities(noise, unseen), student.probabilities(noise, unseen), rtol=1e-5)
    with pytest.raises(ValueError, match="give the texts"):
        loaded.predict(noise)
