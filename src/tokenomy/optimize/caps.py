"""Output caps learned from the ledger: per task, a high percentile of completion tokens times a margin.

Only successful chat answers that reached a model count (cache hits repeat an earlier answer). A
task with fewer than ``min_requests`` answers gets no cap: a percentile of a handful of samples
says little. The result is printed as ``optimize.rules`` to paste into the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports.sql import placeholder


@dataclass(frozen=True, slots=True)
class Cap:
    """A suggested cap for one task, or why there is none (``max_tokens`` is ``None``)."""

    task: str
    answers: int
    percentile_tokens: float
    max_tokens: int | None


def learn_caps(
    store: LedgerStore, *, since: float | None, percentile: float, margin: float, min_requests: int
) -> list[Cap]:
    """One :class:`Cap` per task seen in the window, most answers first."""
    mark = placeholder(store.dialect)
    sql = (
        "SELECT task, completion_tokens FROM requests WHERE endpoint = 'chat' AND status < 400 "
        "AND cache NOT IN ('hit-exact', 'hit-semantic', 'coalesced') AND completion_tokens > 0"
    )
    params: list[float] = []
    if since is not None:
        sql += f" AND ts >= {mark}"
        params.append(since)
    conn = store.connect()
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    by_task: dict[str, list[int]] = {}
    for task, tokens in rows:
        by_task.setdefault(str(task), []).append(int(tokens))
    caps = []
    for task, tokens in sorted(by_task.items(), key=lambda kv: -len(kv[1])):
        value = float(np.percentile(tokens, percentile))
        cap = math.ceil(value * margin) if len(tokens) >= min_requests else None
        caps.append(Cap(task, len(tokens), value, cap))
    return caps


def as_rules_yaml(caps: list[Cap], percentile: float, margin: float) -> str:
    """The caps as an ``optimize.rules`` block (tasks without a cap are left out)."""
    lines = ["optimize:", "  rules:"]
    for cap in caps:
        if cap.max_tokens is not None:
            lines.append(
                f"    - {{task: {cap.task!r}, max_tokens: {cap.max_tokens}}}"
                f"   # p{percentile:g} of {cap.answers:,} answers: {cap.percentile_tokens:,.0f} tokens, x{margin:g}"
            )
    if len(lines) == 2:
        lines.append("    []   # no task has enough answers yet")
    return "\n".join(lines) + "\n"
