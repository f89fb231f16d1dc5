"""Score a generative (LoRA) student on conversations with known answers: exact match, latency, size."""

from __future__ import annotations

from typing import Any

import numpy as np

from tokenomy.distill.dialogues import Dialogues
from tokenomy.distill.lora_student import LoraStudent, greedy_answers


def evaluate_lora_student(student: LoraStudent, data: Dialogues, *, n_threads: int = 1) -> dict[str, Any]:
    """:func:`lora_figures` without the answers."""
    return lora_figures(student, data, n_threads=n_threads)[0]


def lora_figures(student: LoraStudent, data: Dialogues, *, n_threads: int = 1) -> tuple[dict[str, Any], list[str]]:
    """The figures ``tokenomy distill evaluate`` prints for a LoRA student.

    Every example is answered once, greedily, one request at a time, through the engine the
    gateway serves it with (the base model's F16 variant and the adapter, ``n_threads`` threads);
    an answer is right when it equals the expected one after trimming spaces. The student never
    abstains, so ``accuracy`` and ``accuracy_when_answered`` are the same figure.
    """
    answers, seconds, cpu = greedy_answers(student, data.messages, n_threads=n_threads)
    right = np.asarray([a == b for a, b in zip(answers, data.answers, strict=True)])
    latencies = np.asarray(seconds) * 1000
    size = sum(f.stat().st_size for f in student.directory.iterdir() if f.is_file())
    accuracy = float(right.mean())
    figures = {
        "accuracy": accuracy,
        "answered_share": 1.0,
        "accuracy_when_answered": accuracy,
        "accuracy_without_abstention": accuracy,
        "p50_latency_ms": float(np.percentile(latencies, 50)),
        "p99_latency_ms": float(np.percentile(latencies, 99)),
        "cpu_ms_per_request": cpu * 1000 / len(answers),
        "size_mb": size / 1e6,
        "examples": len(answers),
        "latency_samples": len(answers),
        "threads": n_threads,
    }
    return figures, answers
