"""Bounded metric labels: task tags beyond a limit fold into ``other``."""

from __future__ import annotations

import threading

OTHER = "other"


class TaskLabels:
    """The first ``limit`` distinct task tags keep their name as a label; later ones become ``other``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._known: set[str] = {"untagged"}
        self._lock = threading.Lock()

    def __call__(self, task: str) -> str:
        """The label to use for a task tag."""
        if task in self._known:
            return task
        with self._lock:
            if len(self._known) < self._limit + 1:  # "untagged" does not count against the limit
                self._known.add(task)
                return task
        return OTHER
