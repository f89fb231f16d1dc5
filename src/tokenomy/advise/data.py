"""The ledger queries the advisor needs, for SQLite and PostgreSQL (aggregated in the database).

Only successful records (status < 400) are read: an action can only save on calls that were paid for.
Two kinds of query keep a large ledger fast (builds on the dashboard's hourly rollup, ledger version 6):

- the sums per task, model and deployment, and the hourly arrival pattern, come from the rollup's
  ``use`` rows (whole UTC hours) plus the raw records of the partial hours at the window's edges;
- what needs single records (repeated prompt hashes, answer lengths, stored prompts) reads a bounded
  sample: the :data:`SAMPLE` most recent successful records of the window (the ``ts`` index, newest
  first). Figures from it are scaled to the window by :meth:`LedgerReader.scale`; when the window holds
  no more records than the sample, the scale is 1 and the figures are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenomy.dashboard.rollup_query import raw_where, rollup_where, split
from tokenomy.ledger import rollup
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports.model import Window
from tokenomy.reports.sql import placeholder, where

MODEL = "COALESCE(served_model, requested_model)"
PREFIX_SAMPLE = 200
"""Prompts per task and model whose shared prefix is measured (the most recent ones)."""
SAMPLE = 50_000
"""Most recent successful records of the window read by the detectors that need single records."""
_USE = {name: i for i, name in enumerate(rollup.columns("use"))}


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
        self._hours: list[tuple[int, str, str, tuple[Any, ...]]] | None = None
        self._sampled: dict[tuple[str, str], float] | None = None

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

    def _hourly(self) -> list[tuple[int, str, str, tuple[Any, ...]]]:
        """Per UTC hour, task and ``b`` (model, deployment, provider): the ``use`` rollup columns."""
        if self._hours is not None:
            return self._hours
        cols = rollup.columns("use")
        merge = {"first_ts": "MIN", "last_ts": "MAX"}
        measures = ", ".join(f"{merge.get(c, 'SUM')}({c})" for c in cols)
        parts = split(self.window)
        out: list[tuple[int, str, str, tuple[Any, ...]]] = []
        conn = self.store.connect()
        try:
            if parts.hours is not None:
                clause, params = rollup_where(self.store, self.window, parts.hours)
                statement = f"SELECT hour, a, b, {measures} FROM {rollup.TABLE} WHERE {clause} AND dim = 'use'"
                for hour, a, b, *values in conn.execute(f"{statement} GROUP BY 1, 2, 3", params).fetchall():
                    out.append((int(hour), str(a), str(b), tuple(values)))
            for since, until in parts.edges:
                clause, params = raw_where(self.store, Window(since, until, self.window.tenant))
                statement = rollup.aggregate("use", "requests", clause, self.store.dialect)
                for hour, _tenant, a, b, *values in conn.execute(statement, params).fetchall():
                    out.append((int(hour), str(a), str(b), tuple(values)))
        finally:
            conn.close()
        self._hours = out
        return out

    def usage(self) -> list[Usage]:
        """Per task, model and deployment: requests, tokens, cost and time span (from the hourly rollup)."""
        sums: dict[tuple[str, str], list[Any]] = {}
        for _hour, task, b, values in self._hourly():
            acc = sums.get((task, b))
            if acc is None:
                sums[(task, b)] = list(values)
                continue
            for name, i in _USE.items():
                if name == "first_ts":
                    acc[i] = min(acc[i], values[i])
                elif name == "last_ts":
                    acc[i] = max(acc[i], values[i])
                else:
                    acc[i] = (acc[i] or 0) + (values[i] or 0)
        out = []
        for (task, b), v in sums.items():
            model, deployment, provider = (b.split(rollup.SEP) + ["", ""])[:3]
            out.append(
                Usage(
                    task,
                    model,
                    deployment or None,
                    provider or None,
                    int(v[_USE["requests"]]),
                    int(v[_USE["streamed"]] or 0),
                    int(v[_USE["prompt_tokens"]] or 0),
                    int(v[_USE["completion_tokens"]] or 0),
                    int(v[_USE["cached_tokens"]] or 0),
                    float(v[_USE["cost_usd"]] or 0.0),
                    float(v[_USE["first_ts"]]),
                    float(v[_USE["last_ts"]]),
                )
            )
        return sorted(out, key=lambda u: (u.task, u.model, u.deployment or "", u.provider or ""))

    def hourly_arrivals(self, first_hour: int, hours: int) -> dict[tuple[str, str], dict[int, int]]:
        """Per task and model: requests per bucket of ``hours`` whole UTC hours, counted from ``first_hour``."""
        out: dict[tuple[str, str], dict[int, int]] = {}
        for hour, task, b, values in self._hourly():
            counts = out.setdefault((task, b.split(rollup.SEP)[0]), {})
            bucket = (hour - first_hour) // hours
            counts[bucket] = counts.get(bucket, 0) + int(values[_USE["requests"]])
        return out

    def _sample(self, outer: str, inner: str, tail: str = "", params: tuple[Any, ...] = ()) -> list[Any]:
        """``outer`` over the window's :data:`SAMPLE` most recent successful records (``inner`` columns)."""
        clause, window_params = where(self.window, self.store.dialect, extra=("status < 400",))
        recent = f"SELECT {inner} FROM requests{clause} ORDER BY ts DESC LIMIT {SAMPLE}"
        conn = self.store.connect()
        try:
            rows: list[Any] = conn.execute(f"{outer} FROM ({recent}) AS s {tail}", [*window_params, *params]).fetchall()
        finally:
            conn.close()
        return rows

    def scale(self, task: str, model: str, usage: list[Usage]) -> float:
        """How many times the window's spend on a task and model exceeds the sample's (1: all of it was read;
        0: none of it was)."""
        if self._sampled is None:
            self._sampled = {
                (str(t), str(m)): float(c or 0.0)
                for t, m, c in self._sample("SELECT task, model, SUM(cost_usd)", f"task, {MODEL} AS model, cost_usd",
                                            "GROUP BY 1, 2")
            }
        sampled = self._sampled.get((task, model), 0.0)
        total = sum(u.cost_usd for u in usage if u.task == task and u.model == model)
        if sampled <= 0:
            return 0.0
        return max(1.0, total / sampled)

    def duplicates(self) -> list[Duplicates]:
        """Identical prompts (same hash, task and model) paid for more than once, among the sample's records
        (scale them with :meth:`scale`)."""
        inner = self._sample(
            "SELECT task, model, prompt_hash, COUNT(*) AS n, SUM(cost_usd), "
            "SUM(CASE WHEN cache = 'bypass' THEN 1 ELSE 0 END), SUM(CASE WHEN cache = 'miss' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN cache = 'none' THEN 1 ELSE 0 END)",
            f"task, {MODEL} AS model, prompt_hash, cost_usd, cache",
            "WHERE prompt_hash IS NOT NULL AND cache IN ('none', 'miss', 'bypass') GROUP BY 1, 2, 3 HAVING COUNT(*) > 1",
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
        """The most recent stored prompts of a task and model (within the sample), with their prompt tokens."""
        mark = self._mark
        return [
            (str(p), int(t))
            for p, t in self._sample(
                "SELECT prompt, prompt_tokens",
                f"task, {MODEL} AS model, prompt, prompt_tokens, ts",
                f"WHERE prompt IS NOT NULL AND task = {mark} AND model = {mark} ORDER BY ts DESC LIMIT {PREFIX_SAMPLE}",
                (task, model),
            )
        ]

    def paid_prompts(self, task: str, model: str, limit: int) -> list[tuple[str, str, float]]:
        """The ``limit`` most recent stored prompts of a task and model that were paid for (not served from
        the cache), within the sample, oldest first: (prompt hash, prompt text, cost)."""
        mark = self._mark
        rows = self._sample(
            "SELECT prompt_hash, prompt, cost_usd, ts",
            f"task, {MODEL} AS model, prompt_hash, prompt, cost_usd, cache, ts",
            f"WHERE prompt IS NOT NULL AND cache IN ('none', 'miss', 'bypass') AND task = {mark} AND model = {mark} "
            f"ORDER BY ts DESC LIMIT {int(limit)}",
            (task, model),
        )
        return [(str(h), str(p), float(c or 0.0)) for h, p, c, _ts in reversed(rows)]

    def arrivals(self, first_ts: float, bucket_s: float) -> dict[tuple[str, str], dict[int, int]]:
        """Per task and model: requests per time bucket (``bucket_s`` long, counted from ``first_ts``), from the
        raw records (the detector uses it on short windows only; :meth:`hourly_arrivals` otherwise)."""
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
        """Per task and model: how many answers had each completion token count (in the sample)."""
        rows = self._sample(
            "SELECT task, model, completion_tokens, COUNT(*)",
            f"task, {MODEL} AS model, completion_tokens",
            "GROUP BY 1, 2, 3",
        )
        out: dict[tuple[str, str], dict[int, int]] = {}
        for task, model, tokens, n in rows:
            out.setdefault((str(task), str(model)), {})[int(tokens)] = int(n)
        return out
