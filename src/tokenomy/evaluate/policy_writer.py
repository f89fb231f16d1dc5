"""Writing the per-task policy file (read by the ``policy`` router) from measured results.

For each task every measured model becomes a candidate with ``quality`` = the **lower bound** of
its 95% confidence interval and ``cost_per_1k_requests`` = its measured cost, under the task's
``min_quality``. The router then serves the task with the cheapest candidate whose lower bound
meets the bar, which is the choice reported here. A task where no model's lower bound meets the bar
is left out of the file (and reported), since the router refuses a policy that cannot be met.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tokenomy.config.policy import Candidate, PolicySet, TaskPolicy
from tokenomy.evaluate.summary import ModelTaskResult


@dataclass(slots=True)
class WrittenPolicy:
    """The policy set, each task's chosen model, and the tasks no model qualified for."""

    policies: PolicySet
    chosen: dict[str, str] = field(default_factory=dict)
    unmet: dict[str, float] = field(default_factory=dict)  # task -> best lower bound


def build_policy(rows: Iterable[ModelTaskResult], min_quality: float) -> WrittenPolicy:
    """The policy set for ``rows`` (tasks in first-seen order)."""
    by_task: dict[str, list[ModelTaskResult]] = defaultdict(list)
    for row in rows:
        if row.ci_low is not None and row.cost_per_1k_requests_usd is not None:
            by_task[row.task].append(row)
    tasks: dict[str, TaskPolicy] = {}
    written = WrittenPolicy(PolicySet())
    for task, members in by_task.items():
        candidates = tuple(
            Candidate(
                model=r.model,
                quality=round(min(1.0, max(0.0, r.ci_low or 0.0)), 4),
                cost_per_1k_requests=round(r.cost_per_1k_requests_usd or 0.0, 6),
            )
            for r in members
        )
        policy = TaskPolicy(min_quality=min_quality, candidates=candidates)
        chosen = policy.choose()
        if chosen is None:
            written.unmet[task] = max(c.quality for c in candidates)
            continue
        tasks[task] = policy
        written.chosen[task] = chosen.model
    written.policies = PolicySet(tasks=tasks)
    return written


def write_policy(path: str | Path, written: WrittenPolicy, rows: Iterable[ModelTaskResult], source: str) -> None:
    """Write the policy file (YAML; JSON when the name ends in ``.json``) with a header of the measurements."""
    file = Path(path)
    data = written.policies.model_dump(mode="json", exclude_none=True)
    for policy in data["tasks"].values():  # the defaults the router fills in need not be written
        policy.pop("typical_prompt_tokens", None)
        policy.pop("typical_completion_tokens", None)
    if file.suffix == ".json":
        import json

        file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return
    lines = [
        f"# Written by `tokenomy eval` from {source}.",
        "# quality = lower bound of the 95% confidence interval of the measured mean; cost = measured.",
    ]
    for row in rows:
        if row.quality is not None:
            lines.append(
                f"#   {row.task} / {row.model}: mean {row.quality:.3f} "
                f"[{row.ci_low:.3f}, {row.ci_high:.3f}] over {row.n} items"
            )
    for task, best in written.unmet.items():
        lines.append(f"# task {task!r} left out: no model's lower bound reaches the bar (best {best:.3f})")
    file.write_text("\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
