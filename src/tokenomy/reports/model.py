"""The report's typed results: additive sums, latency percentiles, groups, prompts and the whole report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tokenomy.ledger.record import LEVERS

GroupBy = Literal["task", "model", "key", "tenant", "team", "language", "day"]
GROUP_BYS: tuple[GroupBy, ...] = ("task", "model", "key", "tenant", "team", "language", "day")
"""The ``--by`` dimensions."""

Format = Literal["table", "json", "csv", "html"]
FORMATS: tuple[Format, ...] = ("table", "json", "csv", "html")
"""The ``--format`` choices."""

PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0)
"""Latency percentiles computed for every group (linear interpolation, as ``numpy.percentile``)."""


def _zero_levers() -> dict[str, float]:
    return dict.fromkeys(LEVERS, 0.0)


@dataclass(slots=True)
class Sums:
    """Additive measures of a set of records (they add up across groups)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from a provider's prompt cache
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    saved_usd: dict[str, float] = field(default_factory=_zero_levers)
    finished: int = 0  # answers whose finish reason the ledger recorded
    length_stops: int = 0  # of those, answers cut short at the output limit (``finish_reason: length``)
    cascade_requests: int = 0  # requests a cascade router served
    first_step_answers: int = 0  # of those, answered by the cascade's first step (the student)

    def add(self, other: Sums) -> None:
        """Add ``other`` into these sums."""
        self.requests += other.requests
        self.errors += other.errors
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_usd += other.cost_usd
        self.baseline_cost_usd += other.baseline_cost_usd
        for lever, amount in other.saved_usd.items():
            self.saved_usd[lever] = self.saved_usd.get(lever, 0.0) + amount
        self.finished += other.finished
        self.length_stops += other.length_stops
        self.cascade_requests += other.cascade_requests
        self.first_step_answers += other.first_step_answers

    @property
    def length_stop_rate(self) -> float | None:
        """Share of answers cut short at the output limit (``None``: no finish reason recorded)."""
        return self.length_stops / self.finished if self.finished else None

    @property
    def student_share(self) -> float | None:
        """Share of cascade requests answered by the cascade's first step (``None`` without cascades).

        In a student-first cascade the first step is the student: this is the share it answered
        without the teacher.
        """
        return self.first_step_answers / self.cascade_requests if self.cascade_requests else None

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def cached_input_share(self) -> float:
        """Share of prompt tokens read from a provider's prompt cache (0 when there are none)."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def saved_total_usd(self) -> float:
        """Savings of all levers together."""
        return sum(self.saved_usd.values())

    @property
    def error_rate(self) -> float:
        """Share of requests with status >= 400 (0 when there are none)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def tokens_per_request(self) -> float:
        """Mean prompt + completion tokens per request."""
        return self.tokens / self.requests if self.requests else 0.0

    @property
    def cost_per_1k_requests_usd(self) -> float:
        """Spend per 1,000 requests."""
        return self.cost_usd * 1000.0 / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency percentiles in milliseconds (``None`` when the group has no records)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """One row of a grouped table."""

    name: str
    sums: Sums
    latency: Latency = Latency()


@dataclass(frozen=True, slots=True)
class PromptRow:
    """A prompt (by hash) and what it cost over the window."""

    prompt_hash: str
    requests: int
    cost_usd: float
    tokens: int
    prompt: str | None = None  # only with --show-prompts and a ledger that stored prompts


@dataclass(frozen=True, slots=True)
class Window:
    """The time range ``[since, until)`` in epoch seconds (``None`` is open), optionally of one tenant."""

    since: float | None = None
    until: float | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Sections:
    """Which parts beyond the ``--by`` groups a report needs (each costs a query)."""

    economy: bool = False  # token economy by task and by language
    series: bool = False  # cost and baseline over time
    top_prompts: int = 0  # most expensive prompts to list (0: none)
    show_prompts: bool = False  # include prompt text where the ledger stored it


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """What to report on."""

    by: GroupBy = "task"
    window: Window = Window()
    sections: Sections = Sections()
    compare_with: str | None = None  # a hosted model to price the same tokens on (a comparison, not a saving)


@dataclass(frozen=True, slots=True)
class PriceRow:
    """Requests priced one way: ``configured``, ``database``, ``default`` or ``unknown``."""

    kind: str
    requests: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """What the window's chat and completion tokens would cost on a hosted model at its list price."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # None: the price database does not know the model


@dataclass(slots=True)
class Report:
    """Everything a renderer needs."""

    query: ReportQuery
    source: str  # where the records came from (no secrets)
    groups: list[Group]
    total: Group
    by_task: list[Group] = field(default_factory=list)
    by_language: list[Group] = field(default_factory=list)
    series: list[tuple[float, Sums]] = field(default_factory=list)  # (bucket start, sums), in time order
    bucket_s: int = 86400
    top_prompts: list[PromptRow] = field(default_factory=list)
    generated_at: float = 0.0
    prices: list[PriceRow] = field(default_factory=list)  # how the window's requests were priced
    comparison: Comparison | None = None
    # live precision of the semantic cache (tokenomy.reports.semantic); empty without audits
    semantic: list[Any] = field(default_factory=list)
    semantic_budget: float | None = None
