"""The advisor's typed results: one recommendation per action, and the advice as a whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Confidence = Literal["high", "medium", "low"]

CONFIDENCE_WEIGHT: dict[Confidence, float] = {"high": 1.0, "medium": 0.6, "low": 0.25}
"""Recommendations are ranked by saving times this weight: a measured saving outranks a guess."""

MONTH_S = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One action, what it would have saved over the window, and why we think so."""

    kind: str  # cache | prompt-caching | model | batch | output-cap
    title: str
    task: str
    model: str
    window_saving_usd: float  # what the action would have saved over the records read
    monthly_saving_usd: float  # the same, at the window's rate, for 30 days
    confidence: Confidence
    evidence: tuple[str, ...]
    action: str  # the config change or command that makes it
    assumptions: tuple[str, ...] = ()

    @property
    def rank_score(self) -> float:
        """What the ranking sorts on: the monthly saving weighted by confidence."""
        return self.monthly_saving_usd * CONFIDENCE_WEIGHT[self.confidence]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["evidence"], out["assumptions"] = list(self.evidence), list(self.assumptions)
        return out


@dataclass(slots=True)
class Advice:
    """Everything the advisor found in one window of the ledger."""

    source: str
    records: int  # successful records read
    spend_usd: float
    first_ts: float | None
    last_ts: float | None
    recommendations: list[Recommendation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why

    @property
    def span_s(self) -> float:
        """Seconds between the first and the last record (at least one)."""
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return max(1.0, self.last_ts - self.first_ts)

    @property
    def month_factor(self) -> float:
        """Multiply a window's figure by this for a 30-day month at the same rate."""
        return MONTH_S / self.span_s if self.span_s else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (recommendations in rank order)."""
        return {
            "source": self.source,
            "records": self.records,
            "spend_usd": self.spend_usd,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "span_s": self.span_s,
            "month_factor": self.month_factor,
            "recommendations": [r.to_json() for r in self.recommendations],
            "notes": self.notes,
        }
