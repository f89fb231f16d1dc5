"""The student's training on plain vectors: two-class heads, calibration and the abstention threshold."""

from __future__ import annotations

import numpy as np

from tokenomy.distill.data import Examples
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
