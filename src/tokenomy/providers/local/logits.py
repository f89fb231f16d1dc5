"""Logits processors for the llama.cpp sampler: log-probabilities and ``logit_bias``.

llama-cpp-python only returns logprobs when the model is built with ``logits_all=True`` (logits for
every prompt position: slower prompt processing and an n_ctx x n_vocab buffer). Instead, a
processor placed first in the sampler chain sees the raw logits of each step, in token-id order,
before penalties, grammar and temperature (after ``logit_bias``): :class:`LogprobRecorder` keeps
their log-softmax, so the worker can report the sampled token's logprob and the top alternatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token, its log-probability and the most likely alternatives."""

    token: str
    bytes: list[int]
    logprob: float
    top: list[tuple[str, list[int], float]]


class LogprobRecorder:
    """A logits processor that keeps the log-softmax of the raw logits of the latest step."""

    def __init__(self, top: int) -> None:
        self.top = top
        self._latest: npt.NDArray[np.float32] | None = None

    def __call__(self, input_ids: Any, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        peak = float(scores.max())
        self._latest = (scores - (peak + np.log(np.exp(scores - peak).sum()))).astype(np.float32)
        return scores

    def entry(self, llm: Any, token: int, piece: bytes) -> TokenLogprob | None:
        """The logprob entry of ``token`` (just sampled from the latest step's distribution)."""
        latest = self._latest
        if latest is None:
            return None
        top: list[tuple[str, list[int], float]] = []
        if self.top:
            best = np.argpartition(-latest, self.top)[: self.top]
            for alt in best[np.argsort(-latest[best])]:
                alt_piece: bytes = llm.detokenize([int(alt)])
                top.append((alt_piece.decode("utf-8", "replace"), list(alt_piece), float(latest[alt])))
        return TokenLogprob(piece.decode("utf-8", "replace"), list(piece), float(latest[token]), top)


def bias_processor(bias: dict[int, float]) -> Callable[[Any, npt.NDArray[np.float32]], npt.NDArray[np.float32]]:
    """OpenAI ``logit_bias``: add each amount to its token's logit before sampling."""
    ids = np.fromiter(bias.keys(), dtype=np.int64)
    amounts = np.fromiter(bias.values(), dtype=np.float32)

    def apply(input_ids: Any, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        scores[ids] += amounts
        return scores

    return apply
