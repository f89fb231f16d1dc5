"""A distilled student on disk and in memory: MiniLM sentence embeddings and a linear head.

A student directory holds ``student.json`` (format version, labels, abstention threshold, the
embedding model it was trained on, training figures, the SHA-256 of the head) and ``head.npz``
(the head's weights). :func:`load_student` refuses a directory that is missing, truncated, from
another format version or trained on another embedding model, naming the path and the reason.
Serving needs ONNX Runtime and NumPy only.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
EMBEDDING = "all-minilm-l6-v2"
MANIFEST = "student.json"
HEAD = "head.npz"

FloatArray = npt.NDArray[np.float32]


class StudentError(ValueError):
    """A student directory that cannot be loaded, with the path and the reason."""


@dataclass(slots=True)
class Prediction:
    """One answer: the label, the head's probability for it, and whether the student abstains."""

    label: str
    confidence: float
    abstained: bool


@dataclass(slots=True)
class Student:
    """Labels, head weights and the abstention threshold; :meth:`predict` needs embeddings."""

    labels: list[str]
    weights: FloatArray  # (n_labels, dim)
    bias: FloatArray  # (n_labels,)
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, vectors: FloatArray) -> FloatArray:
        """Softmax of the head's scores, one row per vector."""
        scores = vectors @ self.weights.T + self.bias
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        probs: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def predict(self, vectors: FloatArray) -> list[Prediction]:
        """The most likely label per vector; abstain below the threshold."""
        probs = self.probabilities(vectors)
        best = probs.argmax(axis=1)
        return [
            Prediction(self.labels[int(i)], float(probs[row, i]), float(probs[row, i]) < self.threshold)
            for row, i in enumerate(best)
        ]

    def save(self, directory: Path) -> None:
        """Write ``head.npz`` and then ``student.json`` (the manifest last: it marks the directory whole)."""
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, weights=self.weights, bias=self.bias)
        head = buffer.getvalue()
        (directory / HEAD).write_bytes(head)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "embedding-head",
            "embedding": EMBEDDING,
            "labels": self.labels,
            "threshold": self.threshold,
            "head_sha256": hashlib.sha256(head).hexdigest(),
            **self.info,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def load_student(directory: Path) -> Student:
    """Load and check a student directory; :class:`StudentError` naming the path and the problem."""
    manifest_path, head_path = directory / MANIFEST, directory / HEAD
    if not directory.is_dir():
        raise StudentError(f"{directory}: no such student directory")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise StudentError(f"{directory}: no {MANIFEST} (not a student, or training did not finish)") from None
    except (OSError, ValueError) as exc:
        raise StudentError(f"{manifest_path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise StudentError(f"{directory}: student format version {version!r}; this Tokenomy reads {FORMAT_VERSION}")
    if manifest.get("embedding") != EMBEDDING:
        raise StudentError(f"{directory}: trained on embedding {manifest.get('embedding')!r}, not {EMBEDDING!r}")
    try:
        head = head_path.read_bytes()
    except OSError:
        raise StudentError(f"{directory}: no {HEAD}") from None
    if hashlib.sha256(head).hexdigest() != manifest.get("head_sha256"):
        raise StudentError(f"{head_path}: truncated or changed (its SHA-256 does not match {MANIFEST})")
    arrays = np.load(io.BytesIO(head))
    labels = manifest.get("labels")
    weights, bias = arrays["weights"].astype(np.float32), arrays["bias"].astype(np.float32)
    if not isinstance(labels, list) or len(labels) != weights.shape[0] or bias.shape != (len(labels),):
        raise StudentError(f"{directory}: the label set does not match the head ({len(labels or [])} labels)")
    info = {k: v for k, v in manifest.items() if k not in ("labels", "threshold", "head_sha256")}
    return Student([str(x) for x in labels], weights, bias, float(manifest.get("threshold", 0.0)), info)
