"""The serving-time learned router: features of the prompt, a family's scores, the knob's decision.

For one prompt: strip the longest known preamble (:mod:`.preamble`), embed what is left (the
caller embeds :meth:`LearnedRouter.embedding_texts`), score every model with the family's scorer
(:mod:`.scorers`), then decide at the knob's position (:mod:`.knob`): each hull vertex is either
one model for every prompt or the decision rule at a threshold, and a position between two
vertices sends the share of prompts the position calls for (by the prompt's CRC-32) to the pricier.

The decision rule at ``threshold`` in [0, 1] (higher buys more quality for more money): only
models on the prompt's predicted cost-success frontier are eligible (:func:`frontier`); then

* ``margin`` (the default): the cheapest eligible model whose predicted success is at least the
  best candidate's minus ``1 - threshold``;
* ``absolute``: the cheapest eligible model whose predicted success is at least ``threshold``;
  when none is, the one predicted best.

Estimated cost of a model for a prompt: ``cost_base + cost_per_char * len(prompt)`` (least squares
on the training rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tokenomy.routing.learned.features import cheap_features, embedding_texts, pool
from tokenomy.routing.learned.knob import Knob, Vertex, mix_draw, mix_draws
from tokenomy.routing.learned.preamble import Preambles
from tokenomy.routing.learned.scorers import Scorer

Rule = Literal["margin", "absolute"]
RULES: tuple[Rule, ...] = ("margin", "absolute")
F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class RouterChoice:
    """The chosen model, each candidate's predicted success (the ``winprob`` family: the strong
    model's win probability, 0 for the weak one), and why."""

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
    left = np.where(dc < 0, slope, np.inf).min(axis=2)  # lam must stay below every slope from a cheaper model
    right = np.where(dc > 0, slope, -np.inf).max(axis=2)  # and above every slope to a pricier one
    on: npt.NDArray[np.bool_] = left > np.maximum(right, 0.0)
    return on


def select(
    success: F64, cost: F64, threshold: float, rule: Rule, eligible: npt.NDArray[np.bool_] | None = None
) -> IntArray:
    """Column index chosen per row of ``success`` (rows, models) given estimated ``cost`` (same shape)."""
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


def vertex_pick(
    vertex: Vertex,
    success: F64,
    cost: F64,
    rule: Rule,
    cols: list[int],
    eligible: npt.NDArray[np.bool_] | None = None,
    model_cost: F64 | None = None,
) -> IntArray:
    """One knob vertex's pick per row (``cols``: the model index of each column). A ``model`` vertex
    whose model is not among the columns picks the column whose estimated cost is nearest that
    model's (``model_cost``, per row), so the knob keeps its price level with fewer candidates."""
    if vertex.kind == "model":
        if int(vertex.value) in cols:
            return np.full(len(success), cols.index(int(vertex.value)), dtype=np.intp)
        if model_cost is not None:
            nearest: IntArray = np.abs(cost - model_cost[:, None]).argmin(axis=1)
            return nearest
    return select(success, cost, vertex.value if vertex.kind == "threshold" else 1.0, rule, eligible)


def vertex_picks(
    knob: Knob, success: F64, cost: F64, rule: Rule, columns: Sequence[int] | None = None
) -> list[IntArray]:
    """Each knob vertex's pick per row."""
    eligible = frontier(success, cost)
    cols = list(range(success.shape[1])) if columns is None else list(columns)
    return [vertex_pick(v, success, cost, rule, cols, eligible) for v in knob.vertices]


@dataclass(slots=True)
class LearnedRouter:
    """A family's scorer over prompt features, cost estimates and the knob."""

    models: list[str]
    family: str
    scorer: Scorer
    preambles: Preambles
    knob: Knob
    cost_base: F64
    cost_per_char: F64
    rule: Rule = "margin"
    meta: dict[str, Any] = field(default_factory=dict)
    train_hashes: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _index: dict[tuple[str, ...], IntArray] = field(init=False, repr=False, default_factory=dict)

    @property
    def threshold(self) -> float:
        """The default knob position (kept under its old name for callers)."""
        return self.knob.default

    def embedding_texts(self, prompt_text: str) -> list[str]:
        """The texts to embed for ``prompt_text`` (its tail after a known preamble; 1 or 2 windows)."""
        return embedding_texts(self.preambles.split(prompt_text)[1])

    def predict(self, embeddings: npt.NDArray[np.floating[Any]], texts: Sequence[str]) -> F64:
        """Scores ``(rows, models)`` given the pooled tail vector of each prompt."""
        split = [self.preambles.split(t) for t in texts]
        group = np.array([g for g, _ in split], dtype=np.intp)
        cheap = np.stack([cheap_features(tail) for _, tail in split]).astype(np.float64)
        return self.scorer.predict(np.asarray(embeddings), group, cheap)

    def estimate_cost(self, texts: Sequence[str]) -> F64:
        """Estimated USD per query, ``(rows, models)``."""
        chars = np.array([len(t) for t in texts], dtype=np.float64)[:, None]
        out: F64 = self.cost_base + self.cost_per_char * chars
        return out

    def decide(self, success: F64, cost: F64, texts: Sequence[str], position: float | None = None) -> IntArray:
        """Picks per row at knob ``position`` (default: the file's) for a batch (all models are candidates)."""
        position = self.knob.default if position is None else position
        lo, hi, q = self.knob.locate(position)
        cols = list(range(success.shape[1]))
        eligible = frontier(success, cost)
        low = vertex_pick(self.knob.vertices[lo], success, cost, self.rule, cols, eligible)
        high = vertex_pick(self.knob.vertices[hi], success, cost, self.rule, cols, eligible)
        out: IntArray = np.where(mix_draws(texts) < q, high, low)
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
        """Pick a model for one prompt given the vector(s) of :meth:`embedding_texts` (tens of microseconds).

        ``threshold`` is the knob position in [0, 1] (default: the file's).
        """
        position = self.knob.default if threshold is None else threshold
        index = self.candidates(candidates)
        success = self.predict(pool(embedding)[None, :], [prompt_text])[:, index]
        every_cost = self.estimate_cost([prompt_text])
        cost = every_cost[:, index]
        lo, hi, q = self.knob.locate(position)
        v = self.knob.vertices[hi if mix_draw(prompt_text) < q else lo]
        model_cost = every_cost[:, int(v.value)] if v.kind == "model" else None
        pick = int(vertex_pick(v, success, cost, self.rule, index.tolist(), model_cost=model_cost)[0])
        names = [self.models[i] for i in index]
        how = (
            f"knob {position:.2f}: {names[pick]} for every prompt at this point"
            if v.kind == "model" and int(v.value) in index
            else f"knob {position:.2f}: {self.rule} rule at threshold {v.value:.2f} ({self.family})"
        )
        scores = success[0]
        best = int(scores.argmax())
        detail = (
            f"{names[pick]} has the highest predicted success ({scores[pick]:.2f})"
            if pick == best
            else f"{names[pick]} predicted {scores[pick]:.2f} vs {names[best]} {scores[best]:.2f}, and cheaper"
        )
        return RouterChoice(names[pick], dict(zip(names, scores.tolist(), strict=True)), f"{how}; {detail}")
