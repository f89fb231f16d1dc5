"""The decision on a semantic candidate: hard gates, then a logistic model over its features.

A candidate (a stored question in the query's context, with MiniLM cosine ≥ :data:`COSINE_FLOOR`)
is accepted when :func:`~tokenomy.cache.semantic.features.gate` passes and the verifier's
decision value (the logit of "same question", from the cosine, the cross-encoder's logit and the
lexical features) reaches the threshold. The coefficients and the default threshold ship in
``models/verifier.json``, written by ``bench/cache/fit_verifier.py`` from grouped, nested
cross-validation on public labelled pairs (docs/semantic-cache.md). A verifier that
``tokenomy cache tune`` refitted on a team's pairs (``"gates": "feature"``) reads the gate's
verdict as one more feature instead of refusing on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.features import FEATURES, features, gate, normalized
from tokenomy.cache.semantic.float_cross_encoder import Arithmetic
from tokenomy.ledger.language import detect
from tokenomy.providers.local.onnx_threads import Spinning

COSINE_FLOOR = 0.6
"""Candidates below this cosine are never verified (the cosine retrieves; the verifier decides)."""


def default_path() -> Path:
    """The shipped verifier."""
    return Path(str(files("tokenomy.cache.semantic") / "models" / "verifier.json"))


@dataclass(frozen=True, slots=True)
class Verifier:
    """Standardised logistic regression over :data:`~tokenomy.cache.semantic.features.FEATURES`."""

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]
    intercept: float
    threshold: float
    cosine_floor: float = COSINE_FLOOR
    orders: int = 1
    """The cross-encoder feature: the logit of (query, stored) (1) or the mean with (stored, query) (2)."""
    ceiling: float = float("inf")
    """A cross-encoder feature no pair exceeds (the most seen in training plus a margin): a candidate
    whose decision could not reach the threshold even at it is rejected without running the model."""
    gates: Literal["hard", "feature"] = "hard"
    """``hard``: a pair the gate refuses is never a hit; ``feature``: the gate's verdict (1 or 0) is
    the last feature, weighed like the others (a verifier refitted by ``tokenomy cache tune``)."""

    @classmethod
    def load(cls, path: Path | None = None) -> Verifier:
        """Read a verifier file; raises ``ValueError`` when it does not fit these features."""
        doc = json.loads((path or default_path()).read_text())
        gates = doc.get("gates", "hard")
        if gates not in ("hard", "feature"):
            raise ValueError(f"gates must be 'hard' or 'feature', not {gates!r}")
        expected = [*FEATURES, "gate"] if gates == "feature" else list(FEATURES)
        if list(doc["features"]) != expected:
            raise ValueError(f"the verifier reads {doc['features']}, this version computes {expected}")
        orders = int(doc.get("cross_encoder_orders", 1))
        if orders not in (1, 2):
            raise ValueError(f"cross_encoder_orders must be 1 or 2, not {orders}")
        return cls(
            np.asarray(doc["mean"], dtype=np.float64), np.asarray(doc["scale"], dtype=np.float64),
            np.asarray(doc["coef"], dtype=np.float64), float(doc["intercept"]), float(doc["threshold"]),
            float(doc.get("cosine_floor", COSINE_FLOOR)), orders, float(doc.get("cross_encoder_ceiling", "inf")),
            gates,
        )  # fmt: skip

    def line(self, query: str, stored: str, cosine: float) -> tuple[float, float] | None:
        """The decision as a line in the cross-encoder feature: (value at 0, slope); ``None`` when a
        hard gate fails or the cosine is below the floor. The lexical features are computed once."""
        if cosine < self.cosine_floor:
            return None
        return self._line(features(query, stored, cosine, 0.0), gate(query, stored))

    def line_from(self, row: npt.NDArray[np.float64], passes: bool) -> tuple[float, float] | None:
        """:meth:`line` from a pair's :func:`~tokenomy.cache.semantic.features.features` row (its
        cross-encoder value ignored) and :func:`~tokenomy.cache.semantic.features.gate` verdict, for
        callers that read the same pairs under several logits."""
        if row[0] < self.cosine_floor:
            return None
        row = np.array(row, dtype=np.float64)
        row[1] = 0.0
        return self._line(row, passes)

    def _line(self, row: npt.NDArray[np.float64], passes: bool) -> tuple[float, float] | None:
        if self.gates == "feature":
            row = np.append(row, float(passes))
        elif not passes:
            return None
        x = (row - self.mean) / self.scale
        return float(x @ self.coef + self.intercept), float(self.coef[1] / self.scale[1])

    def decision(self, query: str, stored: str, cosine: float, cross_encoder: float) -> float:
        """The logit of "same question" (-inf when a hard gate fails or the cosine is below the floor)."""
        line = self.line(query, stored, cosine)
        return float("-inf") if line is None else line[0] + line[1] * cross_encoder

    def reachable(self, line: tuple[float, float], needed: float, known: float | None = None) -> bool:
        """Whether a candidate on ``line`` could reach ``needed`` with its cross-encoder logits at most
        :attr:`ceiling` (``known``: the first order's logit, when the feature is the mean of two).
        True whenever the bound does not apply (a slope that is not positive)."""
        at_most = self.ceiling if known is None else (known + self.ceiling) / 2
        return line[1] <= 0 or line[0] + line[1] * at_most >= needed


def same_language(language: str | None, text: str) -> bool:
    """False only when both languages are known and differ (same-language matching only)."""
    other = detect(text)
    return language is None or other is None or language == other


MAX_VERIFIED = 3
"""Candidates per lookup that reach the cross-encoder (the best by cosine among those passing the gates)."""


class ModelCheck:
    """The cross-encoder and the verifier, loaded once on the worker thread (see :meth:`load`)."""

    def __init__(
        self, model_path: Path | None, verifier_path: Path | None, accept: float | None,
        arithmetic: Arithmetic = "auto", spinning: Spinning | None = None,
    ) -> None:  # fmt: skip
        from tokenomy.cache.semantic.cross_encoder import CrossEncoder

        self._encoder = CrossEncoder(model_path, arithmetic=arithmetic, spinning=spinning)
        self._verifier_path = verifier_path
        self._accept = accept
        self.verifier: Verifier | None = None
        self.failed: str | None = None

    @property
    def cosine_floor(self) -> float:
        """The verifier's cosine floor (the default before it is loaded)."""
        return self.verifier.cosine_floor if self.verifier is not None else COSINE_FLOOR

    @property
    def accept(self) -> float:
        """The decision value a hit needs: the configured one, else the shipped calibrated one."""
        if self._accept is not None:
            return self._accept
        return self.verifier.threshold if self.verifier is not None else float("inf")

    def load(self) -> bool:
        """Load once (blocking); False, with :attr:`failed` set, when the files cannot be used."""
        if self.verifier is not None or self.failed is not None:
            return self.failed is None
        try:
            self._encoder.load()
            self.verifier = Verifier.load(self._verifier_path)
        except Exception as exc:  # a broken model turns the semantic tier off, never the gateway
            self.failed = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def decisions(self, query: str, candidates: list[tuple[str, float]], needed: float | None = None) -> list[float]:
        """Decision values for (stored text, cosine) candidates (blocking; -inf where a gate fails).

        With ``needed`` (the decision a hit needs), a candidate that could not reach it even with the
        cross-encoder at the verifier's ceiling is -inf without running the model; read in both
        orders, one that could not reach it with the second order's logit at the ceiling is -inf
        after the first order alone. A skip can only lose a hit the ceiling wrongly bounds, never
        make a false one."""
        assert self.verifier is not None
        verifier = self.verifier
        out = [float("-inf")] * len(candidates)
        language = detect(query)
        lines: dict[int, tuple[float, float]] = {}
        for i, (text, cosine) in enumerate(candidates):
            line = verifier.line(query, text, cosine)
            if line is None or not same_language(language, text):
                continue
            if needed is None or verifier.reachable(line, needed):
                lines[i] = line
                if len(lines) == MAX_VERIFIED:
                    break
        if not lines:
            return out
        logits = dict(zip(lines, self._encoder.score([(query, candidates[i][0]) for i in lines]), strict=True))
        if verifier.orders == 2:  # the mean with (stored, query), for the candidates that can still pass
            if needed is not None:  # the other order's logit is at most the ceiling too
                logits = {i: x for i, x in logits.items() if verifier.reachable(lines[i], needed, x)}
            if logits:
                others = self._encoder.score([(candidates[i][0], query) for i in logits])
                logits = {i: (x + y) / 2 for (i, x), y in zip(logits.items(), others, strict=True)}
        for i, logit in logits.items():
            at_zero, slope = lines[i]
            out[i] = at_zero + slope * logit
        return out

    def decide(self, query: str, candidates: list[tuple[str, float]], needed: float | None = None) -> list[float]:
        """:meth:`decisions`, except that a candidate equal to the query up to case, punctuation and
        contractions is certain (+inf) without running the models."""
        same = normalized(query)
        certain = [i for i, (text, _) in enumerate(candidates) if normalized(text) == same]
        if certain:
            return [float("inf") if i in certain else float("-inf") for i in range(len(candidates))]
        return self.decisions(query, candidates, needed)
