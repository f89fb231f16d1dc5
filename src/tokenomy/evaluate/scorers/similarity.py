"""The ``similarity`` scorer: cosine of the answer's embedding to ``expected``'s, against a threshold.

Embeddings are the embedded all-MiniLM-L6-v2 (the vector the semantic cache and the learned
router use; it reads the first 256 tokens of each text). ``similarity`` scores 1 at cosine >= 0.8,
``similarity:0.9`` sets the threshold; the cosine itself is in ``detail``. It measures closeness of
meaning, not correctness: a fluent wrong answer on the same topic can pass, and a right answer
phrased very differently can fail. An empty answer scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.scorers.base import Score, ScoreContext
from tokenomy.evaluate.scorers.text import expected_strings

DEFAULT_THRESHOLD = 0.8


async def cosine(a: str, b: str) -> float:
    """Cosine similarity of two texts' MiniLM embeddings (unit vectors, so a dot product)."""
    from tokenomy.providers.local.shared_embed import shared_embedder

    vectors = await shared_embedder().aembed([a, b])
    return float(np.dot(vectors[0], vectors[1]))


@dataclass(frozen=True, slots=True)
class Similarity:
    """See the module docstring."""

    threshold: float = DEFAULT_THRESHOLD
    name: str = "similarity"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        if not answer.strip():
            return Score(0.0, "empty answer")
        best = max([await cosine(answer, e) for e in expected_strings(item)])
        return Score(1.0 if best >= self.threshold else 0.0, f"cosine {best:.3f}")


def similarity(args: str | None) -> Similarity:
    """``similarity`` or ``similarity:0.85``."""
    if not args:
        return Similarity()
    try:
        value = float(args)
    except ValueError:
        raise ValueError(f"threshold must be a number in [-1, 1], got {args!r}") from None
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"threshold must be in [-1, 1], got {value}")
    return Similarity(value)
