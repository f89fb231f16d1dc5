"""The traffic a plan is for: read from the ledger (per month, with the hourly peak) or stated by the user."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tokenomy.ledger.stores.base import LedgerStore

DAYS_PER_MONTH = 30.0
HOURS_PER_MONTH = 730.0
"""Hours in the average month (8,760 / 12), as cloud providers bill them."""


class TrafficError(Exception):
    """No traffic to plan for; the message says how to supply it."""


@dataclass(frozen=True, slots=True)
class Traffic:
    """Monthly volume and its peak; ``source`` says where it came from."""

    requests: float
    input_tokens: float
    cached_tokens: float
    output_tokens: float
    peak_to_mean: float
    source: str
    window_days: float = DAYS_PER_MONTH

    def scaled(self, factor: float) -> Traffic:
        """The same traffic times ``factor`` (growth, or a point on the volume axis)."""
        return replace(
            self,
            requests=self.requests * factor,
            input_tokens=self.input_tokens * factor,
            cached_tokens=self.cached_tokens * factor,
            output_tokens=self.output_tokens * factor,
        )

    @property
    def requests_per_day(self) -> float:
        """Mean requests per day."""
        return self.requests / DAYS_PER_MONTH

    @property
    def peak_output_tokens_per_s(self) -> float:
        """Output tokens per second in the busiest hour."""
        return self.output_tokens / (HOURS_PER_MONTH * 3600) * self.peak_to_mean


def stated(requests_per_day: float, input_tokens: float, output_tokens: float, peak_to_mean: float) -> Traffic:
    """A month of traffic from per-request means (``input_tokens``/``output_tokens`` per request)."""
    if requests_per_day <= 0 or input_tokens < 0 or output_tokens <= 0 or peak_to_mean < 1:
        raise TrafficError(
            "a stated profile needs --requests-per-day > 0, --input-tokens >= 0, --output-tokens > 0 "
            "and --peak-to-mean >= 1"
        )
    n = requests_per_day * DAYS_PER_MONTH
    return Traffic(n, n * input_tokens, 0.0, n * output_tokens, peak_to_mean, "stated profile")


def from_ledger(store: LedgerStore, since: float, until: float, tasks: list[str]) -> Traffic:
    """Successful requests between ``since`` and ``until`` (optionally of some tasks), scaled to 30 days.

    Peak to mean is the busiest hour's output tokens over the mean hour's, across the window.
    """
    mark = "%s" if store.dialect == "postgres" else "?"
    where = [f"ts >= {mark}", f"ts < {mark}", "status = 200"]
    params: list[object] = [since, until]
    if tasks:
        where.append(f"task IN ({', '.join([mark] * len(tasks))})")
        params.extend(tasks)
    cond = " AND ".join(where)
    hour = "CAST(ts / 3600 AS INTEGER)" if store.dialect == "sqlite" else "FLOOR(ts / 3600)"
    totals = (
        "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
        f"COALESCE(SUM(completion_tokens), 0) FROM requests WHERE {cond}"
    )
    hourly = f"SELECT MAX(t) FROM (SELECT SUM(completion_tokens) AS t FROM requests WHERE {cond} GROUP BY {hour}) h"
    conn = store.connect()
    try:
        n, inp, cached, out = conn.execute(totals, params).fetchone()
        (peak,) = conn.execute(hourly, params).fetchone()
    finally:
        conn.close()
    if not n:
        what = f" for task {', '.join(tasks)}" if tasks else ""
        raise TrafficError(
            f"the ledger has no successful requests{what} in the window: widen --since, check --task, "
            "or state the traffic with --requests-per-day, --input-tokens and --output-tokens"
        )
    return from_totals(int(n), float(inp), float(cached), float(out), float(peak or 0), since, until)


def from_totals(n: int, inp: float, cached: float, out: float, peak: float, since: float, until: float) -> Traffic:
    """A month of traffic from a window's totals and its busiest hour's output tokens (``peak``)."""
    days = (until - since) / 86400
    scale = DAYS_PER_MONTH / days
    mean_hour = float(out) / (days * 24) if out else 0.0
    peak_to_mean = max(1.0, float(peak or 0) / mean_hour) if mean_hour else 1.0
    return Traffic(
        float(n) * scale,
        float(inp) * scale,
        float(cached) * scale,
        float(out) * scale,
        peak_to_mean,
        f"ledger, {days:g} days" + ("" if days == DAYS_PER_MONTH else " scaled to 30"),
        days,
    )
