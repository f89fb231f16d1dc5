"""Live precision of the semantic tier: audits of real hits, a running false-hit estimate, an error budget.

A share of semantic hits (``audit_share``) is also answered upstream in the background; the
cache stage compares the cached and the fresh answer and reports each audit here as agreeing
or not (a disagreement counts as a false hit). Per task this keeps:

- **the estimate**: false hits / audits since the acceptance threshold last changed, with a
  one-sided 95 % Clopper-Pearson interval (:mod:`~tokenomy.cache.semantic.stats`), in
  ``/metrics`` as ``tokenomy_semantic_false_hit_rate{task, bound}``;
- **the error budget** (``max_false_hit_rate``): when the interval's lower bound is above the
  budget (evidence that it is exceeded) the task's threshold offset rises by ``step`` — fewer,
  safer hits; when enough audits bound the rate below the budget it falls by ``step`` (down to
  ``-max_loosen``). Either change starts a new window, so the estimate always describes the
  threshold in force. This is the per-task form of the idea in vCache (learning the threshold
  online to keep a user-set error rate).
- **suspension**: when the offset is already at ``max_tighten`` and the evidence still says the
  budget is exceeded, the task's semantic hits are **suspended**: its requests go upstream, and
  each answer that a semantic hit would have replaced is compared with the fresh one instead (a
  *shadow audit*, which costs no upstream call). On traffic whose near misses the matcher cannot
  tell apart, a stricter threshold does not raise precision, it only removes hits
  (docs/semantic-cache.md); suspension is what keeps such a task within its budget. Once shadow
  audits bound the rate below the budget, hits resume at the strictest threshold.

With a ``path``, the per-task counts are also written there as JSON (at most every
:data:`WRITE_EVERY_S` seconds, and by :meth:`LivePrecision.save`), which ``tokenomy report``
reads for its live-precision section (:func:`read_audits`), and which a restarted gateway reads
back, so offsets and suspensions survive a restart (not a change of the budget).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenomy.cache.semantic.stats import lower_bound, needed_for, upper_bound
from tokenomy.telemetry import metrics

log = logging.getLogger("tokenomy.cache")

WRITE_EVERY_S = 5.0
"""Counts are written to the audit file at most this often (and at shutdown)."""
STEP = 0.5
"""How far one tightening or loosening moves a task's acceptance threshold (decision values, logits)."""
MAX_TIGHTEN = 2.0
"""The strictest offset; past it the task is suspended. On the near-miss pairs of the training pools
(docs/semantic-cache.md, "Live precision") precision does not rise beyond +2, only recall falls."""
MAX_WINDOW = 4096
"""A window this full is halved (older audits weigh less; bounds stay cheap to compute)."""


@dataclass(slots=True)
class TaskStats:
    """Audits of one task: in the current window, and in all."""

    audits: int = 0
    false_hits: int = 0
    total_audits: int = 0
    total_false_hits: int = 0
    offset: float = 0.0
    suspended: bool = False

    def estimate(self) -> tuple[float | None, float, float]:
        """(rate, low, high) of the current window; rate ``None`` before the first audit."""
        if not self.audits:
            return None, 0.0, 1.0
        k, n = self.false_hits, self.audits
        return k / n, lower_bound(k, n), upper_bound(k, n)


class LivePrecision:
    """Per-task false-hit estimates and threshold offsets (see the module docstring)."""

    def __init__(
        self, max_false_hit_rate: float, *, step: float = STEP, max_tighten: float = MAX_TIGHTEN,
        max_loosen: float = 1.0, path: Path | None = None,
    ) -> None:  # fmt: skip
        self.path = path
        self._written = 0.0
        self.budget = max_false_hit_rate
        self.step = step
        self.max_tighten = max_tighten
        self.max_loosen = max_loosen
        self._loosen_after = needed_for(max_false_hit_rate) if 0 < max_false_hit_rate < 1 else 0
        self.tasks: dict[str, TaskStats] = {}
        saved = read_audits(path) if path is not None and path.exists() else None
        if saved is not None and saved[0] == max_false_hit_rate:  # offsets and suspensions survive a restart
            self.tasks = saved[1]
            for task, stats in self.tasks.items():
                stats.offset = max(-max_loosen, min(max_tighten, stats.offset))  # the limits may have changed
                self._publish(task, stats)
        elif saved is not None:
            log.warning("semantic audit counts in %s were kept under another budget (%.3g); starting afresh",
                        path, saved[0])  # fmt: skip

    def offset(self, task: str) -> float:
        """What to add to the acceptance threshold for ``task``."""
        stats = self.tasks.get(task)
        return stats.offset if stats is not None else 0.0

    def suspended(self, task: str) -> bool:
        """Whether ``task``'s semantic hits are suspended (shadow audits only; see the module docstring)."""
        stats = self.tasks.get(task)
        return stats is not None and stats.suspended

    def record(self, task: str, false_hit: bool) -> None:
        """One audited hit; adjusts the task's offset when the evidence says so."""
        stats = self.tasks.setdefault(task, TaskStats())
        stats.audits += 1
        stats.total_audits += 1
        stats.false_hits += int(false_hit)
        stats.total_false_hits += int(false_hit)
        metrics.child(metrics.SEMANTIC_AUDITS, task, "false" if false_hit else "agree").inc()
        k, n = stats.false_hits, stats.audits
        # the lower bound only rises with a false hit, the upper bound only falls without one
        if false_hit and k / n > self.budget and not stats.suspended and lower_bound(k, n) > self.budget:
            if stats.offset < self.max_tighten:
                self._move(stats, self.step)
            else:
                self._suspend(task, stats, True)
        elif (
            not false_hit and n >= self._loosen_after > 0 and n % 16 == 0 and k / n < self.budget
            and (stats.suspended or stats.offset > -self.max_loosen) and upper_bound(k, n) <= self.budget
        ):  # fmt: skip
            if stats.suspended:
                self._suspend(task, stats, False)
            else:
                self._move(stats, -self.step)
        if stats.audits >= MAX_WINDOW:
            stats.audits //= 2
            stats.false_hits //= 2
        if stats.audits < 100 or stats.total_audits % 10 == 0:
            self._publish(task, stats)
        if self.path is not None and time.monotonic() - self._written >= WRITE_EVERY_S:
            self.save()

    def save(self) -> None:
        """Write the per-task counts to :attr:`path` (atomically; a failure is logged, never raised)."""
        if self.path is None or not self.tasks:
            return
        self._written = time.monotonic()
        doc = {"budget": self.budget, "written_at": time.time(),
               "tasks": {task: asdict(stats) for task, stats in self.tasks.items()}}  # fmt: skip
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("semantic audit counts not written to %s: %s", self.path, exc)

    def _suspend(self, task: str, stats: TaskStats, on: bool) -> None:
        stats.suspended = on
        stats.audits = stats.false_hits = 0
        if on:
            log.warning(
                "semantic hits of task %r suspended: audits put its false-hit rate above the %.3g budget even at "
                "the strictest threshold (+%.2f); its requests go upstream and are compared with what the cache "
                "would have answered, and hits resume once %d such comparisons bound the rate below the budget",
                task, self.budget, stats.offset, self._loosen_after,
            )  # fmt: skip
        else:
            log.info("semantic hits of task %r resumed: shadow audits bound its false-hit rate below %.3g",
                     task, self.budget)  # fmt: skip
        self._publish(task, stats)

    def _move(self, stats: TaskStats, delta: float) -> None:
        stats.offset = max(-self.max_loosen, min(self.max_tighten, stats.offset + delta))
        stats.audits = stats.false_hits = 0

    def _publish(self, task: str, stats: TaskStats) -> None:
        rate, low, high = stats.estimate()
        metrics.child(metrics.SEMANTIC_FALSE_HIT_RATE, task, "estimate").set(rate if rate is not None else float("nan"))
        metrics.child(metrics.SEMANTIC_FALSE_HIT_RATE, task, "low95").set(low)
        metrics.child(metrics.SEMANTIC_FALSE_HIT_RATE, task, "high95").set(high)
        metrics.child(metrics.SEMANTIC_THRESHOLD_OFFSET, task).set(stats.offset)
        metrics.child(metrics.SEMANTIC_SUSPENDED, task).set(float(stats.suspended))


def read_audits(path: Path) -> tuple[float, dict[str, TaskStats]] | None:
    """The budget and per-task counts an audit file holds; ``None`` when there is none (or it is unreadable)."""
    try:
        doc = json.loads(path.read_text())
        tasks = {str(task): TaskStats(**{k: type(v)(row.get(k, v)) for k, v in asdict(TaskStats()).items()})
                 for task, row in doc["tasks"].items()}  # fmt: skip
        return float(doc["budget"]), tasks
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
