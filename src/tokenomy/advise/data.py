"""The ledger queries the advisor needs, for SQLite and PostgreSQL (aggregated in the database).

Only successful records (status < 400) are read: an action can only save on calls that were paid for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports.model import Window
from tokenomy.reports.sql import placeholder, where

MODEL = "COALESCE(served_model, requested_model)"
PREFIX_SAMPLE = 200
"""Prompts per task and model whose shared prefix is measured (the most recent ones)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Sums of one task on one model and deployment."""

    task: str
    model: str
    deployment: str | None
    provider: str | None
    requests: int
    streamed: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    first_ts: float
    last_ts: float


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Repeats of identical prompts of a task and model that were paid for (not served from the cache)."""

    task: str
    model: str
    prompts: int  # distinct prompts sent more than once
    requests: int  # all their requests
    repeat_cost_usd: float  # cost of every request after a prompt's first
    bypassed: int  # requests the cache skipped (temperature > 0, or a rule)
    missed: int  # requests the cache looked up and missed
    uncached: int  # requests with no cache stage at all


class LedgerReader:
    """Runs the advisor's queries on a store's connections."""

    def __init__(self, store: LedgerStore, window: Window) -> None:
        self.store = store
        self.window = window
        self._mark = placeholder(store.dialect)

    def _rows(
        self,
        select: str,
        extra: tuple[str, ...] = (),
        tail: str = "",
        params: tuple[Any, ...] = (),
        select_params: tuple[Any, ...] = (),
    ) -> list[Any]:
        clause, window_params = where(self.window, self.store.dialect, extra=("status < 400", *extra))
        conn = self.store.connect()
        try:
            # where() puts the extra conditions (and so their parameters) first
            rows: list[Any] = conn.execute(
                f"{select} FROM requests{clause} {tail}", [*select_params, *params, *window_params]
            ).fetchall()
        finally:
            conn.close()
        return rows

    def usage(self) -> list[Usage]:
        """Per task, model and deployment: requests, tokens, cost and time span."""
        rows = self._rows(
            f"SELECT task, {MODEL}, deployment, provider, COUNT(*), SUM(CASE WHEN stream THEN 1 ELSE 0 END), "
            "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd), MIN(ts), MAX(ts)",
            tail="GROUP BY 1, 2, 3, 4",
        )
        return [
            Usage(
                str(t),
                str(m),
                d,
                p,
                int(n),
                int(s or 0),
                int(pt or 0),
                int(ct or 0),
                int(ca or 0),
                float(c or 0),
                float(lo),
                float(hi),
            )
            for t, m, d, p, n, s, pt, ct, ca, c, lo, hi in rows
        ]

    def duplicates(self) -> list[Duplicates]:
        """Identical prompts (same hash, task and model) paid for more than once."""
        inner = self._rows(
            f"SELECT task, {MODEL}, prompt_hash, COUNT(*) AS n, SUM(cost_usd), "
            "SUM(CASE WHEN cache = 'bypass' THEN 1 ELSE 0 END), SUM(CASE WHEN cache = 'miss' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN cache = 'none' THEN 1 ELSE 0 END)",
            extra=("prompt_hash IS NOT NULL", "cache IN ('none', 'miss', 'bypass')"),
            tail="GROUP BY 1, 2, 3 HAVING COUNT(*) > 1",
        )
        out: dict[tuple[str, str], list[float]] = {}
        for task, model, _hash, n, cost, bypassed, missed, none in inner:
            acc = out.setdefault((str(task), str(model)), [0, 0, 0.0, 0, 0, 0])
            n = int(n)
            acc[0] += 1
            acc[1] += n
            acc[2] += float(cost or 0.0) * (n - 1) / n  # the first of each prompt had to be paid for
            acc[3] += int(bypassed or 0)
            acc[4] += int(missed or 0)
            acc[5] += int(none or 0)
        return [
            Duplicates(t, m, int(a[0]), int(a[1]), float(a[2]), int(a[3]), int(a[4]), int(a[5]))
            for (t, m), a in out.items()
        ]

    def prompts(self, task: str, model: str) -> list[tuple[str, int]]:
        """The most recent stored prompts of a task and model, with their prompt tokens."""
        mark = self._mark
        return [
            (str(p), int(t))
            for p, t in self._rows(
                "SELECT prompt, prompt_tokens",
                extra=("prompt IS NOT NULL", f"task = {mark}", f"{MODEL} = {mark}"),
                tail=f"ORDER BY ts DESC LIMIT {PREFIX_SAMPLE}",
                params=(task, model),
            )
        ]

    def paid_prompts(self, task: str, model: str, limit: int) -> list[tuple[str, str, float]]:
        """The ``limit`` most recent stored prompts of a task and model that were paid for (not served from
        the cache), oldest first: (prompt hash, prompt text, cost)."""
        mark = self._mark
        rows = self._rows(
            "SELECT prompt_hash, prompt, cost_usd, ts",
            extra=(
                "prompt IS NOT NULL",
                "cache IN ('none', 'miss', 'bypass')",
                f"task = {mark}",
                f"{MODEL} = {mark}",
            ),
            tail=f"ORDER BY ts DESC LIMIT {int(limit)}",
            params=(task, model),
        )
        return [(str(h), str(p), float(c or 0.0)) for h, p, c, _ts in reversed(rows)]

    def arrivals(self, first_ts: float, bucket_s: float) -> dict[tuple[str, str], dict[int, int]]:
        """Per task and model: requests per time bucket (``bucket_s`` long, counted from ``first_ts``)."""
        mark = self._mark
        number = f"CAST((ts - {mark}) / {mark} AS INTEGER)"
        if self.store.dialect == "postgres":
            number = f"CAST(floor((ts - {mark}) / {mark}) AS BIGINT)"
        rows = self._rows(
            f"SELECT task, {MODEL}, {number}, COUNT(*)", tail="GROUP BY 1, 2, 3", select_params=(first_ts, bucket_s)
        )
        out: dict[tuple[str, str], dict[int, int]] = {}
        for task, model, bucket, n in rows:
            out.setdefault((str(task), str(model)), {})[int(bucket)] = int(n)
        return out

    def output_lengths(self) -> dict[tuple[str, str], dict[int, int]]:
        """Per task and model: how many answers had each completion token count."""
        rows = self._rows(f"SELECT task, {MODEL}, completion_tokens, COUNT(*)", tail="GROUP BY 1, 2, 3")
        out: dict[tuple[str, str], dict[int, int]] = {}
        for task, model, tokens, n in rows:
            out.setdefault((str(task), str(model)), {})[int(tokens)] = int(n)
        return out
