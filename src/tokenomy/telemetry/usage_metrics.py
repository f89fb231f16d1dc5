"""Token, cost, baseline, savings and cache-outcome metrics, fed from ledger records.

Amounts are summed per label set over a writer batch and added to the counters once per batch:
a counter increment costs far more than a dictionary update.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tokenomy.ledger.record import LEVERS, LedgerRecord
from tokenomy.telemetry import metrics
from tokenomy.telemetry.labels import TaskLabels

_DIRECTIONS = (
    ("input", "prompt_tokens"),
    ("output", "completion_tokens"),
    ("cached_input", "cached_tokens"),
    ("reasoning", "reasoning_tokens"),
)


class UsageMetrics:
    """A ledger hook: count each finished request's tokens and dollars."""

    def __init__(self, tasks: TaskLabels) -> None:
        self._tasks = tasks
        self._pending: defaultdict[tuple[Any, ...], float] = defaultdict(float)

    def __call__(self, record: LedgerRecord, traceparent: str | None = None) -> None:
        """Add one record to the pending sums (shadow copies are not production traffic)."""
        if record.shadow_of is not None:
            return
        pending = self._pending
        task = self._tasks(record.task)
        model = record.served_model or "unknown"
        provider = record.provider or "none"
        for direction, field in _DIRECTIONS:
            count = getattr(record, field)
            if count:
                pending[(metrics.TOKENS, model, provider, task, direction)] += count
        if record.cost_usd:
            pending[(metrics.COST, model, provider, task)] += record.cost_usd
        if record.baseline_cost_usd:  # labelled by the model the client asked for
            pending[(metrics.BASELINE_COST, record.requested_model, task)] += record.baseline_cost_usd
        for lever in LEVERS:
            saved = getattr(record, f"saved_{lever}_usd")
            if saved > 0:
                pending[(metrics.SAVED, lever, task)] += saved
        pending[(metrics.CACHE_OUTCOMES, record.cache, task)] += 1

    def flush(self) -> None:
        """Add the pending sums to the counters (once per writer batch)."""
        pending, self._pending = self._pending, defaultdict(float)
        for (metric, *labels), amount in pending.items():
            metrics.child(metric, *labels).inc(amount)
