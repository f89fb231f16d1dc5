"""A distilled head student on disk and in memory: MiniLM sentence embeddings and a linear head.

(The other kinds, a fine-tuned encoder and a generative LoRA adapter, live in
:mod:`tokenomy.distill.encoder_student` and :mod:`tokenomy.distill.lora_student`;
:func:`load_student` reads any of them.)

A student may also have a second, lexical head on hashed word and character n-grams
(:mod:`tokenomy.distill.lexical`); its scores are added to the embedding head's (the blend weight
and the calibration temperature are folded into both heads' weights at training).

A student directory holds ``student.json`` (format version, labels, abstention threshold, the
embedding model it was trained on, training figures, the SHA-256 of the head) and ``head.npz``
(the heads' weights). :func:`load_student` refuses a directory that is missing, truncated, from
another format version or trained on another embedding model, naming the path and the reason.
Serving needs ONNX Runtime and NumPy only.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tokenomy.distill.errors import StudentError

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: the embedding head only
EMBEDDING = "all-minilm-l6-v2"
MANIFEST = "student.json"
HEAD = "head.npz"

FloatArray = npt.NDArray[np.float32]

if TYPE_CHECKING:
    from tokenomy.distill.encoder_student import EncoderStudent
    from tokenomy.distill.lora_student import LoraStudent


@dataclass(slots=True)
class Prediction:
    """One answer: the label, the head's probability for it, and whether the student abstains."""

    label: str
    confidence: float
    abstained: bool


@dataclass(slots=True)
class LexicalHead:
    """A linear head on hashed n-gram TF-IDF features: the kept columns, their IDF, the weights."""

    columns: npt.NDArray[np.int64]
    idf: FloatArray
    weights: FloatArray  # (n_labels, len(columns))
    bias: FloatArray  # (n_labels,)
    # the weights transposed into their own C-ordered copy: sparse rows times a transposed view
    # cost 2.8 ms per text on BANKING77's head, times this copy 0.005 ms
    weights_by_column: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.weights_by_column = np.ascontiguousarray(self.weights.T)

    def scores(self, texts: list[str]) -> FloatArray:
        """The head's score per label, one row per text."""
        from tokenomy.distill.lexical import features

        out: FloatArray = np.asarray(features(texts, self.columns, self.idf) @ self.weights_by_column, dtype=np.float32)
        return out + self.bias


@dataclass(slots=True)
class Student:
    """Labels, head weights and the abstention threshold; :meth:`predict` needs embeddings."""

    labels: list[str]
    weights: FloatArray  # (n_labels, dim)
    bias: FloatArray  # (n_labels,)
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)
    lexical: LexicalHead | None = None

    def probabilities(self, vectors: FloatArray, texts: list[str] | None = None) -> FloatArray:
        """Softmax of the heads' summed scores, one row per vector (``texts``: the inputs, for a lexical head)."""
        scores = vectors @ self.weights.T + self.bias
        if self.lexical is not None:
            if texts is None or len(texts) != len(vectors):
                raise ValueError("this student has a lexical head: give the texts with their vectors")
            scores = scores + self.lexical.scores(texts)
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        probs: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def predict(self, vectors: FloatArray, texts: list[str] | None = None) -> list[Prediction]:
        """The most likely label per input; abstain below the threshold."""
        probs = self.probabilities(vectors, texts)
        best = probs.argmax(axis=1)
        return [
            Prediction(self.labels[int(i)], float(probs[row, i]), float(probs[row, i]) < self.threshold)
            for row, i in enumerate(best)
        ]

    def save(self, directory: Path) -> None:
        """Write ``head.npz`` and then ``student.json`` (the manifest last: it marks the directory whole)."""
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        arrays: dict[str, npt.NDArray[Any]] = {"weights": self.weights, "bias": self.bias}
        if self.lexical is not None:
            lex = self.lexical
            arrays |= {"lex_columns": lex.columns, "lex_idf": lex.idf, "lex_weights": lex.weights, "lex_bias": lex.bias}
        np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords as bool
        head = buffer.getvalue()
        (directory / HEAD).write_bytes(head)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "embedding-head" if self.lexical is None else "embedding-and-ngram-heads",
            "embedding": EMBEDDING,
            "labels": self.labels,
            "threshold": self.threshold,
            "head_sha256": hashlib.sha256(head).hexdigest(),
            **self.info,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def load_student(directory: Path) -> Student | EncoderStudent | LoraStudent:
    """Load and check a student directory of any kind; :class:`StudentError` naming the path and the problem."""
    manifest_path, head_path = directory / MANIFEST, directory / HEAD
    if not directory.is_dir():
        raise StudentError(f"{directory}: no such student directory")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise StudentError(f"{directory}: no {MANIFEST} (not a student, or training did not finish)") from None
    except (OSError, ValueError) as exc:
        raise StudentError(f"{manifest_path}: unreadable ({exc})") from None
    if isinstance(manifest, dict) and manifest.get("kind") == "fine-tuned-encoder":
        from tokenomy.distill.encoder_student import load_encoder_student

        return load_encoder_student(directory, manifest)
    if isinstance(manifest, dict) and manifest.get("kind") == "lora-adapter":
        from tokenomy.distill.lora_student import load_lora_student

        return load_lora_student(directory, manifest)
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_VERSIONS:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise StudentError(f"{directory}: student format version {version!r}; this Tokenomy reads {readable}")
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
    lexical = None
    if "lex_weights" in arrays:
        lexical = LexicalHead(
            arrays["lex_columns"].astype(np.int64),
            arrays["lex_idf"].astype(np.float32),
            arrays["lex_weights"].astype(np.float32),
            arrays["lex_bias"].astype(np.float32),
        )
        if lexical.weights.shape != (len(labels), len(lexical.columns)) or lexical.idf.shape != lexical.columns.shape:
            raise StudentError(f"{directory}: the lexical head's shapes do not match its labels and columns")
    info = {k: v for k, v in manifest.items() if k not in ("labels", "threshold", "head_sha256")}
    return Student([str(x) for x in labels], weights, bias, float(manifest.get("threshold", 0.0)), info, lexical)
