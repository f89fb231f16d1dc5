"""The serving-time learned router: predicted success per model, then the decision rule.

Predicted success of model ``m``: ``sigmoid(scale_m * (x @ w_m + b_m) + shift_m)`` where ``x`` is
``[embedding | cheap features]``. Estimated cost of ``m`` for a prompt: ``cost_base_m +
cost_per_char_m * len(prompt)`` (a least-squares fit on the training rows).

Only candidates on the prompt's predicted cost-success frontier are eligible (:func:`frontier`:
a model that some random mix of two others beats on both is never picked). Then, with
``threshold`` in [0, 1] (higher buys more quality for more money):

* ``margin`` (the default): the cheapest eligible model whose predicted success is at least the
  best candidate's minus ``1 - threshold`` (1: the model predicted best; 0: the cheapest model);
* ``absolute``: the cheapest eligible model whose predicted success is at least ``threshold``;
  when none is, the one predicted best.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tokenomy.routing.learned.features import CHEAP_FEATURES, cheap_features

Rule = Literal["margin", "absolute"]
RULES: tuple[Rule, ...] = ("margin", "absolute")
F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class RouterChoice:
    """The chosen model, each candidate's predicted success, and why."""

    model: str
    success: dict[str, float]
    reason: str


def frontier(success: F64, cost: F64) -> npt.NDArray[np.bool_]:
    """Per row, the models on the upper-left hull of (cost, predicted success): those that maximise
    ``success - lam * cost`` for some ``lam >= 0``. The others are beaten by a mix of two models."""
    tiebreak = 1.0 + 1e-9 * np.arange(cost.shape[1])  # equal costs: the first model counts as cheaper
    c = cost * tiebreak
    dc = c[:, None, :] - c[:, :, None]  # [row, m, j] = c_j - c_m
    dp = success[:, None, :] - success[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = dp / dc  # (p_j - p_m) / (c_j - c_m)
    cheaper = dc < 0
    pricier = dc > 0
    left = np.where(cheaper, slope, np.inf).min(axis=2)  # lam must stay below every slope from a cheaper model
    right = np.where(pricier, slope, -np.inf).max(axis=2)  # and above every slope to a pricier one
    on: npt.NDArray[np.bool_] = left > np.maximum(right, 0.0)
    return on


def select(
    success: F64, cost: F64, threshold: float, rule: Rule, eligible: npt.NDArray[np.bool_] | None = None
) -> IntArray:
    """Column index chosen per row of ``success`` (rows, models) given estimated ``cost`` (same shape).

    Only models on the row's :func:`frontier` are eligible (pass ``eligible`` to reuse it across thresholds).
    """
    if eligible is None:
        eligible = frontier(success, cost)
    if rule == "margin":
        ok = success >= success.max(axis=1, keepdims=True) - (1.0 - threshold) - 1e-12
    else:
        ok = success >= threshold
        none = ~(ok & eligible).any(axis=1)
        if none.any():
            ok[none] = success[none] >= success[none].max(axis=1, keepdims=True)
    picked: IntArray = np.where(ok & eligible, cost, np.inf).argmin(axis=1)
    return picked


def _sigmoid(z: F64) -> F64:
    out: F64 = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


@dataclass(slots=True)
class LearnedRouter:
    """Per-model success classifiers over ``[embedding | cheap features]`` plus per-model cost estimates."""

    models: list[str]
    weights: F64  # (features, models)
    bias: F64
    scale: F64
    shift: F64
    cost_base: F64
    cost_per_char: F64
    threshold: float
    rule: Rule = "margin"
    meta: dict[str, Any] = field(default_factory=dict)
    _emb_w: npt.NDArray[np.float32] = field(init=False, repr=False)
    _cheap_w: F64 = field(init=False, repr=False)
    _index: dict[tuple[str, ...], IntArray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dim = self.embedding_dim
        self._emb_w = np.ascontiguousarray(self.weights[:dim], dtype=np.float32)
        self._cheap_w = np.ascontiguousarray(self.weights[dim:])
        self._index = {}

    @property
    def embedding_dim(self) -> int:
        return int(self.weights.shape[0] - len(CHEAP_FEATURES))

    def predict(self, embeddings: npt.NDArray[np.floating[Any]], texts: Sequence[str]) -> F64:
        """Predicted success, ``(rows, models)``, for a batch."""
        cheap = np.stack([cheap_features(t) for t in texts]).astype(np.float64)
        z = np.asarray(embeddings, dtype=np.float32) @ self._emb_w + cheap @ self._cheap_w + self.bias
        return _sigmoid(self.scale * z + self.shift)

    def estimate_cost(self, texts: Sequence[str]) -> F64:
        """Estimated USD per query, ``(rows, models)``."""
        chars = np.array([len(t) for t in texts], dtype=np.float64)[:, None]
        out: F64 = self.cost_base + self.cost_per_char * chars
        return out

    def candidates(self, names: Sequence[str] | None) -> IntArray:
        """Column indices of ``names`` (all models when ``None``); ``ValueError`` naming unknown ones."""
        key = tuple(self.models) if names is None else tuple(names)
        found = self._index.get(key)
        if found is None:
            unknown = [n for n in key if n not in self.models]
            if unknown:
                raise ValueError(f"unknown model(s) {unknown} for this router; it knows: {', '.join(self.models)}")
            if not key:
                raise ValueError("no candidate models to route between")
            found = np.array([self.models.index(n) for n in key], dtype=np.intp)
            self._index[key] = found
        return found

    def choose(
        self,
        embedding: npt.NDArray[np.floating[Any]],
        prompt_text: str,
        candidates: Sequence[str] | None = None,
        threshold: float | None = None,
    ) -> RouterChoice:
        """Pick a model for one prompt given its embedding (tens of microseconds)."""
        t = self.threshold if threshold is None else threshold
        index = self.candidates(candidates)
        z = np.asarray(embedding, dtype=np.float32) @ self._emb_w + cheap_features(prompt_text) @ self._cheap_w
        success = _sigmoid(self.scale * (z + self.bias) + self.shift)[index]
        cost = (self.cost_base + self.cost_per_char * len(prompt_text))[index]
        pick = int(select(success[None, :], cost[None, :], t, self.rule)[0])
        names = [self.models[i] for i in index]
        best = int(success.argmax())
        if pick == best:
            reason = f"{names[pick]} has the highest predicted success ({success[pick]:.2f})"
        elif self.rule == "margin":
            reason = (
                f"{names[pick]} is the cheapest frontier model predicted within {1 - t:.2f} of the best "
                f"({success[pick]:.2f} vs {names[best]} {success[best]:.2f})"
            )
        else:
            reason = f"{names[pick]} is the cheapest frontier model predicted >= {t:.2f} ({success[pick]:.2f})"
        return RouterChoice(names[pick], dict(zip(names, success.tolist(), strict=True)), reason)
