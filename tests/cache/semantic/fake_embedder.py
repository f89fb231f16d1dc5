"""A deterministic stand-in for the embedding model: bag-of-words vectors, unit length."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import numpy.typing as npt


def _word_vector(word: str, dim: int) -> npt.NDArray[np.float32]:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class FakeEmbedder:
    """Texts sharing most words get similar vectors; counts its calls."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.calls = 0

    def vectors(self, texts: list[str]) -> npt.NDArray[np.float32]:
        rows = []
        for text in texts:
            words = re.findall(r"\w+", text.lower()) or ["<empty>"]
            v = sum(_word_vector(w, self.dim) for w in words)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows).astype(np.float32)

    async def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return self.vectors(texts)
