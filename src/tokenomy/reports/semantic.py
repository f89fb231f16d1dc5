"""The report's live-precision section: audits of semantic cache hits and the false-hit estimate per task.

The gateway's semantic tier audits a share of its hits (``cache.semantic.audit_share``) and keeps
per-task counts in ``semantic-audits.json`` beside its index file
(:mod:`tokenomy.cache.semantic.live`); this section reads that file. The estimate and its
95 % Clopper-Pearson interval describe the acceptance threshold now in force (the window since
the error budget last moved it); the totals count every audit. A task whose hits the error budget
has suspended shows "suspended" instead of its offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from tokenomy.cache.semantic.live import TaskStats, read_audits


@dataclass(frozen=True, slots=True)
class SemanticAudit:
    """One task's audited semantic hits."""

    task: str
    audits: int  # in the current window
    false_hits: int
    rate: float | None  # false hits / audits (None before the first audit)
    low95: float
    high95: float
    threshold_offset: float  # what the error budget adds to the acceptance threshold now
    total_audits: int
    total_false_hits: int
    suspended: bool = False  # hits suspended by the error budget (audits are then shadow audits)

    def as_json(self) -> dict[str, Any]:
        """The JSON object of this row (the report's group objects carry it under ``semantic_audits``)."""
        return {
            "audits": self.audits, "false_hits": self.false_hits, "false_hit_rate": self.rate,
            "false_hit_rate_low95": self.low95, "false_hit_rate_high95": self.high95,
            "threshold_offset": self.threshold_offset, "total_audits": self.total_audits,
            "total_false_hits": self.total_false_hits, "suspended": self.suspended,
        }  # fmt: skip


def load(path: Path) -> tuple[float | None, list[SemanticAudit]]:
    """The error budget and the rows of an audit file (``None, []`` when there is none)."""
    found = read_audits(path)
    if found is None:
        return None, []
    budget, tasks = found
    return budget, rows_of(tasks)


def rows_of(tasks: dict[str, TaskStats]) -> list[SemanticAudit]:
    """One row per task of per-task counts (from the audit file, or a running gateway's)."""
    rows = []
    for task, stats in sorted(tasks.items()):
        rate, low, high = stats.estimate()
        rows.append(SemanticAudit(task, stats.audits, stats.false_hits, rate, low, high, stats.offset,
                                  stats.total_audits, stats.total_false_hits, stats.suspended))  # fmt: skip
    return rows


def table(rows: list[SemanticAudit], budget: float | None) -> Table:
    """The terminal table."""
    title = "Semantic cache: live precision (audited hits)"
    if budget is not None:
        title += f", error budget {budget:.1%}"
    out = Table(title=title, title_justify="left")
    out.add_column("task")
    for name in ("audits", "false hits", "false-hit rate", "95% interval", "threshold offset", "all audits"):
        out.add_column(name, justify="right")
    for row in rows:
        rate = "-" if row.rate is None else f"{row.rate:.2%}"
        out.add_row(row.task, f"{row.audits:,}", f"{row.false_hits:,}", rate, f"{row.low95:.2%} to {row.high95:.2%}",
                    "suspended" if row.suspended else f"{row.threshold_offset:+.2f}",
                    f"{row.total_false_hits:,}/{row.total_audits:,}")  # fmt: skip
    return out
