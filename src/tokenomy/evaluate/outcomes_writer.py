"""Writing per-item outcomes in the format the learned router trains on (``tokenomy router train``).

One row per item: ``sample_id``, ``eval_name`` (the task), ``prompt`` (the last user turn, the text
the gateway's routers read), then per model ``<model>`` (the item's score, the mean of its repeats)
and ``<model>|total_cost`` (its mean cost per call, USD). A model whose calls on an item all failed
leaves both cells empty, and the router's loader skips that row (it says how many).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.results import CallResult

COST_SUFFIX = "|total_cost"  # as tokenomy.routing.learned.outcomes reads it


def write_outcomes(
    path: str | Path, items: Sequence[EvalItem], models: Sequence[str], results: Iterable[CallResult]
) -> int:
    """Write the outcomes CSV; returns the number of rows with every model scored."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    costs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for result in results:
        if result.score is not None:
            scores[(result.item, result.model)].append(result.score)
            costs[(result.item, result.model)].append(result.cost_usd)
    header = ["sample_id", "eval_name", "prompt"]
    for model in models:
        header += [model, model + COST_SUFFIX]
    complete = 0
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for item in items:
            row: list[object] = [item.id, item.task, item.prompt_text()]
            full = True
            for model in models:
                got = scores.get((item.id, model))
                if got:
                    spent = costs[(item.id, model)]
                    row += [round(sum(got) / len(got), 6), f"{sum(spent) / len(spent):.10f}"]
                else:
                    row += ["", ""]
                    full = False
            if any(scores.get((item.id, m)) for m in models):
                writer.writerow(row)
                complete += full
    return complete
