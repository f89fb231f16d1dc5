"""Token, cost, baseline, savings and cache-outcome metrics, fed from ledger records."""

from __future__ import annotations

from tokenomy.ledger.record import LEVERS, LedgerRecord
from tokenomy.pipeline.context import CallContext
from tokenomy.telemetry import metrics
from tokenomy.telemetry.labels import TaskLabels


class UsageMetrics:
    """A ledger hook: count each finished request's tokens and dollars."""

    def __init__(self, tasks: TaskLabels) -> None:
        self._tasks = tasks

    def __call__(self, record: LedgerRecord, ctx: CallContext) -> None:
        """Add one record to the counters."""
        task = self._tasks(record.task)
        model = record.served_model or "unknown"
        provider = record.provider or "none"
        child = metrics.child
        for direction, count in (
            ("input", record.prompt_tokens),
            ("output", record.completion_tokens),
            ("cached_input", record.cached_tokens),
            ("reasoning", record.reasoning_tokens),
        ):
            if count:
                child(metrics.TOKENS, model, provider, task, direction).inc(count)
        if record.cost_usd:
            child(metrics.COST, model, provider, task).inc(record.cost_usd)
        if record.baseline_cost_usd:
            base_model = ctx.baseline_deployment.model if ctx.baseline_deployment is not None else model
            child(metrics.BASELINE_COST, base_model, task).inc(record.baseline_cost_usd)
        for lever in LEVERS:
            saved = getattr(record, f"saved_{lever}_usd")
            if saved > 0:
                child(metrics.SAVED, lever, task).inc(saved)
        child(metrics.CACHE_OUTCOMES, record.cache, task).inc()
