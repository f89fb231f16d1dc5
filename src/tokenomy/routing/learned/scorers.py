"""Serving-time scorers: a prompt's features to each model's predicted success (or win probability).

Features of a prompt (see :mod:`.features`): ``emb``, the unit vector of its tail (the text after a
known preamble); ``group``, which preamble it had (0: none); ``cheap``, cheap text features of the
tail. Two forms cover every family:

* :class:`LinearScorer` (families ``logistic``, ``mf`` and ``winprob``): per model
  ``sigmoid(scale * (emb @ w_emb + w_group[group] + cheap @ w_cheap + bias) + shift)``;
* :class:`KnnScorer` (family ``knn``): the mean outcome of the ``k`` training prompts most similar
  to this one (cosine over a PCA projection of the tail vectors, same preamble first), shrunk
  towards the preamble's mean outcome by ``alpha`` pseudo-rows.

Both are plain arrays (saved in the router file without pickles) and take microseconds per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Ints = npt.NDArray[np.intp]
_SAME_GROUP_BONUS = 4.0  # > the widest cosine gap (2): neighbours from the same preamble come first
_CHUNK = 512


def sigmoid(z: F64) -> F64:
    out: F64 = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


@dataclass(slots=True)
class LinearScorer:
    """Calibrated per-model logistic scores; ``weights`` rows are ``[emb | group one-hot | cheap]``."""

    weights: F64  # (features, models)
    bias: F64
    scale: F64
    shift: F64
    dim: int  # embedding dimension
    groups: int
    _emb: F32 = field(init=False, repr=False)
    _group: F64 = field(init=False, repr=False)
    _cheap: F64 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._emb = np.ascontiguousarray(self.weights[: self.dim], dtype=np.float32)
        self._group = np.ascontiguousarray(self.weights[self.dim : self.dim + self.groups])
        self._cheap = np.ascontiguousarray(self.weights[self.dim + self.groups :])

    def predict(self, emb: npt.NDArray[np.floating], group: Ints, cheap: F64) -> F64:
        """``(rows, models)`` probabilities."""
        z = np.asarray(emb, dtype=np.float32) @ self._emb + self._group[group] + cheap @ self._cheap + self.bias
        return sigmoid(self.scale * z.astype(np.float64) + self.shift)

    def arrays(self) -> dict[str, F64]:
        return {"weights": self.weights, "bias": self.bias, "scale": self.scale, "shift": self.shift}


@dataclass(slots=True)
class KnnScorer:
    """Smoothed k-nearest-neighbour success rates over the training prompts' tail vectors."""

    mean: F64  # (dim,) centre of the training vectors
    proj: F64  # (dim, r) PCA projection
    ref: F32  # (n, r) unit rows: the reference prompts in projected space
    ref_group: Ints  # (n,)
    ref_y: F64  # (n, models) outcomes
    prior: F64  # (groups, models) mean outcome per preamble group
    k: int
    alpha: float

    def project(self, emb: npt.NDArray[np.floating]) -> F32:
        """Rows of ``emb`` in the reference space (unit length)."""
        z = (np.asarray(emb, dtype=np.float64) - self.mean) @ self.proj
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        out: F32 = (z / np.maximum(norm, 1e-12)).astype(np.float32)
        return out

    def predict(self, emb: npt.NDArray[np.floating], group: Ints, cheap: F64 | None = None) -> F64:
        q = self.project(np.atleast_2d(emb))
        out = np.zeros((len(q), self.ref_y.shape[1]))
        k = min(self.k, len(self.ref))
        for start in range(0, len(q), _CHUNK):
            block = q[start : start + _CHUNK]
            # one prompt (serving): einsum's own loop; a threaded BLAS gemv costs ~10x more CPU on a busy host
            sims = np.einsum("ij,kj->ki", self.ref, block) if len(block) <= 4 else block @ self.ref.T
            sims += _SAME_GROUP_BONUS * (group[start : start + _CHUNK, None] == self.ref_group[None, :])
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            total = self.ref_y[top].sum(axis=1)
            out[start : start + _CHUNK] = (total + self.alpha * self.prior[group[start : start + _CHUNK]]) / (
                k + self.alpha
            )
        return out

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        return {
            "knn_mean": self.mean,
            "knn_proj": self.proj,
            "knn_ref": self.ref,
            "knn_ref_group": self.ref_group.astype(np.int64),
            "knn_ref_y": self.ref_y,
            "knn_prior": self.prior,
        }


Scorer = LinearScorer | KnnScorer
