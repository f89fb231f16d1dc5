"""The cost-quality Pareto front of an evaluation, per task."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tokenomy.evaluate.summary import ModelTaskResult


def pareto_front(rows: Iterable[ModelTaskResult]) -> dict[str, list[str]]:
    """Per task, the models no other model beats on both cost and quality, cheapest first.

    A model is on the front when every cheaper model has lower quality (ties in cost: the better
    one). Models without a quality or a cost (every call failed) are left out.
    """
    tasks: dict[str, list[ModelTaskResult]] = defaultdict(list)
    for row in rows:
        if row.quality is not None and row.cost_per_1k_requests_usd is not None:
            tasks[row.task].append(row)
    front: dict[str, list[str]] = {}
    for task, members in tasks.items():
        best = -1.0
        kept: list[str] = []
        for row in sorted(members, key=lambda r: (r.cost_per_1k_requests_usd or 0.0, -(r.quality or 0.0))):
            assert row.quality is not None
            if row.quality > best:
                kept.append(row.model)
                best = row.quality
        front[task] = kept
    return front
