"""Score a student on labelled data: accuracy (abstentions count as wrong), answered share, latency, size."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tokenomy.distill.data import DistillDataError, Examples
from tokenomy.distill.embed import Encoder
from tokenomy.distill.encoder_student import EncoderStudent
from tokenomy.distill.student import Prediction, Student


def classifier(student: Student | EncoderStudent, encoder: Encoder | None) -> Callable[[list[str]], list[Prediction]]:
    """Texts to predictions: an encoder student reads texts itself, a head student needs ``encoder``."""
    if isinstance(student, EncoderStudent):
        return student.predict_texts
    if encoder is None:
        raise ValueError("a head student needs the MiniLM encoder")
    head, embed = student, encoder.encode
    return lambda texts: head.predict(embed(texts), texts)


def evaluate_student(
    student: Student | EncoderStudent, data: Examples, encoder: Encoder | None, directory: Path
) -> dict[str, Any]:
    """The figures ``tokenomy distill evaluate`` prints; latency is per single request (batch of one)."""
    predict = classifier(student, encoder)
    unknown = sorted(set(data.labels) - set(student.labels))
    if unknown:
        raise DistillDataError(
            f"the label set changed: the data has labels the student never saw: {', '.join(unknown[:5])}"
            + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
        )
    predictions = predict(data.texts)
    right = np.asarray([p.label == t for p, t in zip(predictions, data.labels, strict=True)])
    answered = np.asarray([not p.abstained for p in predictions])
    latencies = []
    cpu_started = time.process_time()
    for text in data.texts[: min(len(data.texts), 200)]:
        started = time.perf_counter()
        predict([text])
        latencies.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / len(latencies)
    size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    return {
        "accuracy": float((right & answered).mean()),
        "answered_share": float(answered.mean()),
        "accuracy_when_answered": float(right[answered].mean()) if answered.any() else 0.0,
        "accuracy_without_abstention": float(right.mean()),
        "p50_latency_ms": float(np.percentile(latencies, 50)),
        "p99_latency_ms": float(np.percentile(latencies, 99)),
        "cpu_ms_per_request": cpu_ms,
        "size_mb": size / 1e6,
        "examples": len(data.texts),
        "latency_samples": len(latencies),
    }
