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
    """Runs the advisor's queries on one connection of the store (opened at the first query; :meth:`close`)."""

    def __init__(self, store: LedgerStore, window: Window) -> None:
        self.store = store
        self.window = window
        self._mark = placeholder(store.dialect)
        self._sums: list[tuple[Any, ...]] | None = None
        self._sample_rows: list[tuple[str, str, str | None, float, str, int]] | None = None
        self._sampled: dict[tuple[str, str], float] | None = None
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.store.connect()
        return self._conn

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _rows(
        self,
        select: str,
        extra: tuple[str, ...] = (),
        tail: str = "",
        params: tuple[Any, ...] = (),
        select_params: tuple[Any, ...] = (),
    ) -> list[Any]:
        clause, window_params = where(self.window, self.store.dialect, extra=("status < 400", *extra))
        # where() puts the extra conditions (and so their parameters) first
        rows: list[Any] = (
            self._connection()
            .execute(f"{select} FROM requests{clause} {tail}", [*select_params, *params, *window_params])
            .fetchall()
        )
        return rows

    def _use(self, keys: str, measures: str) -> list[tuple[Any, ...]]:
        """``keys`` (of ``hour, a, b``) and ``measures`` of the window's ``use`` rollup rows, grouped by the keys;
        plus the same per hour from the raw records of the partial hours at the window's edges."""
        parts = split(self.window)
        group = ", ".join(str(i + 1) for i in range(keys.count(",") + 1))
        out: list[tuple[Any, ...]] = []
        conn = self._connection()
        if parts.hours is not None:
            clause, params = rollup_where(self.store, self.window, parts.hours)
            statement = f"SELECT {keys}, {measures} FROM {rollup.TABLE} WHERE {clause} AND dim = 'use'"
            out += [tuple(r) for r in conn.execute(f"{statement} GROUP BY {group}", params).fetchall()]
        for since, until in parts.edges:
            clause, params = raw_where(self.store, Window(since, until, self.window.tenant))
            inner = rollup.aggregate("use", "requests", clause, self.store.dialect)
            names = ", ".join(f"{c}_" if c in ("hour", "a", "b") else c for c in keys.split(", "))
            statement = f"SELECT {names.replace('hour_', 'bucket_')}, {measures} FROM ({inner}) AS e GROUP BY {group}"
            out += [tuple(r) for r in conn.execute(statement, params).fetchall()]
        return out

    def usage(self) -> list[Usage]:
        """Per task, model and deployment: requests, tokens, cost and time span (from the hourly rollup)."""
        merge = {"first_ts": "MIN", "last_ts": "MAX"}
        measures = ", ".join(f"{merge.get(c, 'SUM')}({c})" for c in rollup.columns("use"))
        if self._sums is None:
            self._sums = self._use("a, b", measures)
        sums: dict[tuple[str, str], list[Any]] = {}
        for task, b, *values in self._sums:
            acc = sums.get((str(task), str(b)))
            if acc is None:
                sums[(str(task), str(b))] = list(values)
                continue
            for name, i in _USE.items():
                pick = min if name == "first_ts" else max if name == "last_ts" else None
                acc[i] = pick(acc[i], values[i]) if pick else (acc[i] or 0) + (values[i] or 0)
        out = []
        for (task, b), v in sums.items():
            model, deployment, provider = [*b.split(rollup.SEP), "", ""][:3]
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
        for hour, task, b, n in self._use("hour, a, b", "SUM(requests)"):
            counts = out.setdefault((str(task), str(b).split(rollup.SEP)[0]), {})
            bucket = (int(hour) - first_hour) // hours
            counts[bucket] = counts.get(bucket, 0) + int(n)
        return out

    def _recent(self) -> list[tuple[str, str, str | None, float, str, int]]:
        """The window's :data:`SAMPLE` most recent successful records: (task, model, prompt hash, cost, cache
        outcome, completion tokens), read once (on the ``ts`` index, newest first)."""
        if self._sample_rows is None:
            rows = self._rows(
                f"SELECT task, {MODEL}, prompt_hash, cost_usd, cache, completion_tokens",
                tail=f"ORDER BY ts DESC LIMIT {int(SAMPLE)}",
            )
            self._sample_rows = [(str(t), str(m), h, float(c or 0.0), str(k), int(n)) for t, m, h, c, k, n in rows]
        return self._sample_rows

    def _sample(self, outer: str, inner: str, tail: str = "", params: tuple[Any, ...] = ()) -> list[Any]:
        """``outer`` over the window's :data:`SAMPLE` most recent successful records (``inner`` columns)."""
        clause, window_params = where(self.window, self.store.dialect, extra=("status < 400",))
        recent = f"SELECT {inner} FROM requests{clause} ORDER BY ts DESC LIMIT {int(SAMPLE)}"
        rows: list[Any] = (
            self._connection().execute(f"{outer} FROM ({recent}) AS s {tail}", [*window_params, *params]).fetchall()
        )
        return rows

    def scale(self, task: str, model: str, usage: list[Usage]) -> float:
        """How many times the window's spend on a task and model exceeds the sample's (1: all of it was read;
        0: none of it was)."""
        if self._sampled is None:
            self._sampled = {}
            for t, m, _h, cost, _k, _n in self._recent():
                self._sampled[(t, m)] = self._sampled.get((t, m), 0.0) + cost
        sampled = self._sampled.get((task, model), 0.0)
        total = sum(u.cost_usd for u in usage if u.task == task and u.model == model)
        if sampled <= 0:
            return 0.0
        return max(1.0, total / sampled)

    def duplicates(self) -> list[Duplicates]:
        """Identical prompts (same hash, task and model) paid for more than once, among the sample's records
        (scale them with :meth:`scale`)."""
        per_prompt: dict[tuple[str, str, str], list[Any]] = {}
        for task, model, prompt_hash, cost, cache, _n in self._recent():
            if prompt_hash is None or cache not in ("none", "miss", "bypass"):
                continue
            acc = per_prompt.setdefault((task, model, prompt_hash), [0, 0.0, 0, 0, 0])
            acc[0] += 1
            acc[1] += cost
            acc[2 + ("bypass", "miss", "none").index(cache)] += 1
        out: dict[tuple[str, str], list[float]] = {}
        for (task, model, _hash), (n, cost, bypassed, missed, none) in per_prompt.items():
            if n < 2:
                continue
            acc = out.setdefault((task, model), [0, 0, 0.0, 0, 0, 0])
            acc[0] += 1
            acc[1] += n
            acc[2] += cost * (n - 1) / n  # the first of each prompt had to be paid for
            acc[3] += bypassed
            acc[4] += missed
            acc[5] += none
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
        out: dict[tuple[str, str], dict[int, int]] = {}
        for task, model, _h, _c, _k, tokens in self._recent():
            counts = out.setdefault((task, model), {})
            counts[tokens] = counts.get(tokens, 0) + 1
        return out
