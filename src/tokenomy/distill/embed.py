"""Sentence vectors for students: the embedded all-MiniLM-L6-v2 (int8 ONNX), in batches."""

from __future__ import annotations

import numpy as np

from tokenomy.distill.student import FloatArray
from tokenomy.providers.local.embeddings import MiniLMEmbedder


class Encoder:
    """Loads the embedded MiniLM once; :meth:`encode` returns unit vectors, one row per text."""

    def __init__(self, n_threads: int = 1, batch_size: int = 64) -> None:
        self._model = MiniLMEmbedder(n_threads=n_threads, spin="never")
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> FloatArray:
        """Embed ``texts`` in batches."""
        if not self._model.loaded:
            self._model.load()
        rows: list[FloatArray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._model.embed(list(texts[start : start + self.batch_size]))
            rows.extend(np.asarray(e.vector, dtype=np.float32) for e in batch)
        return np.vstack(rows) if rows else np.zeros((0, 384), dtype=np.float32)
