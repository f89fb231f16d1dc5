"""The run directory: per-call results written as they finish, so an interrupted run resumes.

``DIR/run.json`` holds what the run measures (dataset, models, scorer, repeats); ``--resume``
refuses a directory made for something else. ``DIR/results.jsonl`` gets one line per call, flushed
as soon as the call is scored. A call that ended in an upstream error is not *finished*: resuming
calls it again (the later line wins).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

RESULTS = "results.jsonl"
RUN = "run.json"
_MAY_CHANGE = frozenset({"limit"})
"""Parameters a resumed run may change (a larger ``--limit`` extends the run)."""


class RunDirError(ValueError):
    """A run directory that cannot be used (exists without ``--resume``, or made for another run)."""


@dataclass(slots=True)
class CallResult:
    """One (item, model, repeat): the answer's score, or why there is none, and what it cost."""

    item: str
    model: str
    repeat: int
    task: str
    score: float | None = None
    detail: str = ""
    error: str | None = None
    error_kind: str | None = None  # upstream | request | scorer
    answer: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    scorer_cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    deployment: str | None = None
    request_id: str | None = None
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        """What identifies the call across runs."""
        return (self.item, self.model, self.repeat)

    @property
    def finished(self) -> bool:
        """Scored, or failed for a reason that calling again would not fix."""
        return self.error_kind != "upstream"


class RunDir:
    """Append-only results of one run, plus its parameters."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._out: TextIO | None = None

    def prepare(self, params: dict[str, Any], resume: bool) -> dict[tuple[str, str, int], CallResult]:
        """Create or reopen the directory; returns the finished results to keep (empty for a new run)."""
        run_file = self.path / RUN
        if run_file.exists():
            if not resume:
                raise RunDirError(f"{self.path} already holds a run; pass --resume to continue it, or another --out")
            before = json.loads(run_file.read_text(encoding="utf-8"))
            changed = [k for k in params if k in before and before[k] != params[k] and k not in _MAY_CHANGE]
            if changed:
                raise RunDirError(f"{self.path} holds a run with other {', '.join(changed)}; use another --out")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            run_file.write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
        done = {r.key: r for r in self.load() if r.finished}
        return done

    def load(self) -> list[CallResult]:
        """Every result line (the last line per call wins; a torn last line is ignored)."""
        file = self.path / RESULTS
        if not file.exists():
            return []
        found: dict[tuple[str, str, int], CallResult] = {}
        with file.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    result = CallResult(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line cut by a kill mid-write
                found[result.key] = result
        return list(found.values())

    def append(self, result: CallResult) -> None:
        """Write one result and flush it to the OS (a kill loses at most the line being written)."""
        if self._out is None:
            file = self.path / RESULTS
            self._out = file.open("a", encoding="utf-8")
            if file.stat().st_size and not _ends_with_newline(file):
                self._out.write("\n")  # start clean after a torn line
        self._out.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
        self._out.flush()

    def close(self) -> None:
        """Close the results file (fsynced)."""
        if self._out is not None:
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
            self._out = None


def _ends_with_newline(file: Path) -> bool:
    with file.open("rb") as raw:
        raw.seek(-1, os.SEEK_END)
        return raw.read(1) == b"\n"
