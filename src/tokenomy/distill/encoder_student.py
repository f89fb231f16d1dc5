"""A fine-tuned encoder student on disk and in memory: an ONNX classifier and its tokenizer.

Written by :mod:`tokenomy.distill.finetune` (which needs PyTorch); read and served here with ONNX
Runtime and ``tokenizers`` only. A directory holds ``student.json`` (format version, kind, labels,
calibration temperature, abstention threshold, training figures, the SHA-256 of every other
file), ``model.onnx`` (token ids and attention mask in, one score per label out) and
``tokenizer.json``, and optionally ``ngram.npz``: a second head on hashed word and character
n-grams (:class:`~tokenomy.distill.student.LexicalHead`) whose scores are added to the model's,
each scaled by the blend weight chosen at training. :func:`load_encoder_student` refuses a
directory with a missing, truncated or changed file or from another format version, naming the
path and the reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.distill.errors import StudentError
from tokenomy.distill.student import MANIFEST, LexicalHead, Prediction

ENCODER_FORMAT_VERSION = 3
ENCODER_KIND = "fine-tuned-encoder"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
NGRAM_FILE = "ngram.npz"
MAX_LENGTH = 64  # tokens read per text; longer texts are truncated (intent queries are ~15 tokens)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class EncoderStudent:
    """Labels, an ONNX Runtime session and its tokenizer; :meth:`predict_texts` labels raw texts."""

    def __init__(
        self,
        directory: Path,
        labels: list[str],
        *,
        temperature: float = 1.0,
        threshold: float = 0.0,
        info: dict[str, Any] | None = None,
        max_length: int = MAX_LENGTH,
        n_threads: int = 1,
        encoder_weight: float = 1.0,
        lexical: LexicalHead | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.directory = directory
        self.labels = labels
        self.temperature = temperature
        self.threshold = threshold
        self.info = info or {}
        self.encoder_weight = encoder_weight
        self.lexical = lexical
        self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        outputs = self._session.get_outputs()
        if len(outputs) != 1 or outputs[0].shape[-1] != len(labels):
            raise StudentError(f"{directory / MODEL_FILE}: the model's output does not have one score per label")

    def model_scores(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """The ONNX model's own scores, one row per text."""
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        out = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return np.asarray(out, dtype=np.float64)

    def scores(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """The blended scores before the temperature: the model's, plus the n-gram head's if any."""
        scores = self.model_scores(texts) * self.encoder_weight
        if self.lexical is not None:
            scores = scores + self.lexical.scores(texts)
        return scores

    def count_tokens(self, text: str) -> int:
        """Tokens the student reads for ``text`` (after truncation)."""
        return sum(self._tokenizer.encode(text).attention_mask)

    def probabilities(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Calibrated label probabilities, one row per text."""
        scores = self.scores(texts) / self.temperature
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        out: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return out

    def predict_texts(self, texts: list[str], batch_size: int = 32) -> list[Prediction]:
        """The most likely label per text; abstain below the threshold."""
        predictions: list[Prediction] = []
        for start in range(0, len(texts), batch_size):
            probs = self.probabilities(list(texts[start : start + batch_size]))
            for row in probs:
                best = int(row.argmax())
                confidence = float(row[best])
                predictions.append(Prediction(self.labels[best], confidence, confidence < self.threshold))
        return predictions

    def save_manifest(self) -> None:
        """Write ``ngram.npz`` if any, then ``student.json`` with the checksums (last: it marks the directory whole)."""
        names = [MODEL_FILE, TOKENIZER_FILE]
        if self.lexical is not None:
            lex = self.lexical
            with (self.directory / NGRAM_FILE).open("wb") as handle:
                np.savez(handle, columns=lex.columns, idf=lex.idf, weights=lex.weights, bias=lex.bias)
            names.append(NGRAM_FILE)
        manifest = {
            "format_version": ENCODER_FORMAT_VERSION,
            "kind": ENCODER_KIND,
            "labels": self.labels,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "encoder_weight": self.encoder_weight,
            "files": {name: file_sha256(self.directory / name) for name in names},
            **self.info,
        }
        (self.directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def load_encoder_student(directory: Path, manifest: dict[str, Any], n_threads: int = 1) -> EncoderStudent:
    """Check a fine-tuned encoder student's files against its manifest and load it."""
    if manifest.get("format_version") != ENCODER_FORMAT_VERSION:
        raise StudentError(
            f"{directory}: {ENCODER_KIND} student format version {manifest.get('format_version')!r}; "
            f"this Tokenomy reads {ENCODER_FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not {MODEL_FILE, TOKENIZER_FILE} <= set(files) <= {
        MODEL_FILE,
        TOKENIZER_FILE,
        NGRAM_FILE,
    }:
        raise StudentError(f"{directory}: {MANIFEST} does not list {MODEL_FILE} and {TOKENIZER_FILE}")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise StudentError(f"{directory}: no {name}")
        if file_sha256(path) != expected:
            raise StudentError(f"{path}: truncated or changed (its SHA-256 does not match {MANIFEST})")
    labels = manifest.get("labels")
    if not isinstance(labels, list) or len(labels) < 2:
        raise StudentError(f"{directory}: {MANIFEST} has no label list")
    temperature = float(manifest.get("temperature", 1.0))
    if not temperature > 0:
        raise StudentError(f"{directory}: temperature {temperature} is not positive")
    info = {k: v for k, v in manifest.items() if k not in ("labels", "threshold", "temperature", "files")}
    lexical = _ngram_head(directory, len(labels)) if NGRAM_FILE in files else None
    try:
        return EncoderStudent(
            directory,
            [str(x) for x in labels],
            temperature=temperature,
            threshold=float(manifest.get("threshold", 0.0)),
            info=info,
            n_threads=n_threads,
            encoder_weight=float(manifest.get("encoder_weight", 1.0)),
            lexical=lexical,
        )
    except StudentError:
        raise
    except Exception as exc:  # ONNX Runtime or tokenizers rejected a file whose checksum matched
        raise StudentError(f"{directory}: the model or tokenizer could not be loaded ({exc})") from None


def _ngram_head(directory: Path, n_labels: int) -> LexicalHead:
    try:
        arrays = np.load(directory / NGRAM_FILE)
        head = LexicalHead(
            arrays["columns"].astype(np.int64),
            arrays["idf"].astype(np.float32),
            arrays["weights"].astype(np.float32),
            arrays["bias"].astype(np.float32),
        )
    except (OSError, ValueError, KeyError) as exc:
        raise StudentError(f"{directory / NGRAM_FILE}: unreadable ({exc})") from None
    if head.weights.shape != (n_labels, len(head.columns)) or head.idf.shape != head.columns.shape:
        raise StudentError(f"{directory / NGRAM_FILE}: the n-gram head's shapes do not match its labels and columns")
    return head
