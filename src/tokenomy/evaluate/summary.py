"""Per model and task: quality with a bootstrap confidence interval, errors, cost, tokens, latency.

Quality is the mean over items of each item's score (the mean of its repeats); items whose every
call failed are errors and are left out of the mean (errors are reported apart from wrong answers).
The 95% interval is a percentile bootstrap over items (2,000 resamples, fixed seed), so it says
how much the figure could move with other items of the same kind. With ``repeats > 1`` the spread
of the per-repeat quality (standard deviation) says how much the models' sampling moves it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tokenomy.evaluate.results import CallResult

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(slots=True)
class ModelTaskResult:
    """One row of the results table (also the JSON output's ``results`` entries)."""

    model: str
    task: str
    n: int
    errors: int
    quality: float | None
    ci_low: float | None
    ci_high: float | None
    cost_usd: float
    cost_per_1k_requests_usd: float | None
    prompt_tokens: int
    completion_tokens: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p50_ttft_ms: float | None
    upstream_errors: int = 0
    scorer_errors: int = 0
    request_errors: int = 0
    scorer_cost_usd: float = 0.0
    repeat_quality: list[float] = field(default_factory=list)
    repeat_std: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded for reading."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 6 if "cost" in key else 4)
        out["repeat_quality"] = [round(v, 4) for v in self.repeat_quality]
        return out


def bootstrap_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of ``values``."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) == 0:
        raise ValueError("no values")
    if len(data) == 1 or np.all(data == data[0]):
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(BOOTSTRAP_RESAMPLES, len(data)))
    means = data[picks].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarize(results: Iterable[CallResult]) -> list[ModelTaskResult]:
    """One row per (model, task), in first-seen order."""
    groups: dict[tuple[str, str], list[CallResult]] = defaultdict(list)
    for result in results:
        groups[(result.model, result.task)].append(result)
    return [_row(model, task, calls) for (model, task), calls in groups.items()]


def _row(model: str, task: str, calls: list[CallResult]) -> ModelTaskResult:
    by_item: dict[str, list[float]] = defaultdict(list)
    by_repeat: dict[int, list[float]] = defaultdict(list)
    errors_by_item: dict[str, int] = defaultdict(int)
    answered = [c for c in calls if c.error_kind not in ("upstream", "request")]
    for call in calls:
        if call.score is not None:
            by_item[call.item].append(call.score)
            by_repeat[call.repeat].append(call.score)
        else:
            errors_by_item[call.item] += 1
    item_scores = [float(np.mean(s)) for s in by_item.values()]
    failed_items = sum(1 for item in errors_by_item if item not in by_item)
    quality = ci_low = ci_high = None
    if item_scores:
        quality = float(np.mean(item_scores))
        ci_low, ci_high = bootstrap_ci(item_scores)
    latencies = [c.latency_ms for c in answered]
    ttfts = [c.ttft_ms for c in answered if c.ttft_ms is not None]
    cost = sum(c.cost_usd for c in calls)
    repeat_quality = [float(np.mean(by_repeat[r])) for r in sorted(by_repeat)]
    return ModelTaskResult(
        model=model,
        task=task,
        n=len(item_scores),
        errors=failed_items,
        quality=quality,
        ci_low=ci_low,
        ci_high=ci_high,
        cost_usd=cost,
        cost_per_1k_requests_usd=cost / len(answered) * 1000 if answered else None,
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        p50_latency_ms=_pct(latencies, 50),
        p95_latency_ms=_pct(latencies, 95),
        p50_ttft_ms=_pct(ttfts, 50),
        upstream_errors=sum(1 for c in calls if c.error_kind == "upstream"),
        scorer_errors=sum(1 for c in calls if c.error_kind == "scorer"),
        request_errors=sum(1 for c in calls if c.error_kind == "request"),
        scorer_cost_usd=sum(c.scorer_cost_usd for c in calls),
        repeat_quality=repeat_quality if len(repeat_quality) > 1 else [],
        repeat_std=float(np.std(repeat_quality, ddof=1)) if len(repeat_quality) > 1 else None,
    )


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
