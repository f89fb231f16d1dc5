"""The API-or-self-host decision: monthly cost of each option for a traffic, the cheapest one, and the break-even.

API options cost tokens times the model's prices (genai-prices): uncached input, cached input and
output, with the batch discount on the share of traffic that is not interactive. A self-hosted
option runs enough replicas of one GPU type to serve the busiest hour's output tokens at no more
than ``1 - headroom`` of each replica's capacity, plus one spare (N+1), all month; capacity comes
from a measured profile (``tokenomy bench``) whose latency met the SLO, or else a published figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenomy.planning.catalog import GpuRow, PublishedRow
from tokenomy.planning.profiles import capacity
from tokenomy.planning.traffic import HOURS_PER_MONTH, Traffic
from tokenomy.pricing.prices import TokenPrice

BATCH_DISCOUNT = 0.5
"""The OpenAI and Anthropic batch APIs bill half the interactive price."""


class PlanError(Exception):
    """No plan can be made; the message says what is missing and how to supply it."""


@dataclass(frozen=True, slots=True)
class Assumptions:
    """The knobs of the model, all listed in the report."""

    headroom: float = 0.2
    redundancy: int = 1
    batch_share: float = 0.0
    batch_discount: float = BATCH_DISCOUNT
    slo: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Capacity:
    """Output tokens/s one GPU sustains for a model, with its latency there and where the figure comes from."""

    model: str
    gpu: str
    output_tokens_per_s: float
    ttft_p90_ms: float | None
    tpot_p90_ms: float | None
    kind: str  # measured | published
    source: str


@dataclass(frozen=True, slots=True)
class Option:
    """One way to serve the traffic, with its monthly cost and the inputs it was computed from."""

    name: str
    kind: str  # api | self-hosted
    monthly_usd: float
    usd_per_mtok: float
    utilization: float | None = None
    replicas: int | None = None
    latency_at_peak: str = ""
    feasible: bool = True
    note: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)


def api_cost(traffic: Traffic, price: TokenPrice, a: Assumptions) -> float:
    """Monthly USD: tokens times prices, the batch share at the batch discount."""
    uncached = traffic.input_tokens - traffic.cached_tokens
    full = uncached * price.input + traffic.cached_tokens * price.cached_input + traffic.output_tokens * price.output
    return full * (1 - a.batch_share) + full * a.batch_share * (1 - a.batch_discount)


def api_option(model: str, traffic: Traffic, price: TokenPrice, a: Assumptions) -> Option:
    """The API option for ``model``."""
    cost = api_cost(traffic, price, a)
    tokens = traffic.input_tokens + traffic.output_tokens
    return Option(
        name=f"API {model}",
        kind="api",
        monthly_usd=cost,
        usd_per_mtok=cost / tokens * 1e6 if tokens else 0.0,
        latency_at_peak="provider's",
        inputs={
            "model": model,
            "price_source": price.source,
            "input_usd_per_mtok": price.input * 1e6,
            "cached_input_usd_per_mtok": price.cached_input * 1e6,
            "output_usd_per_mtok": price.output * 1e6,
            "input_tokens": traffic.input_tokens,
            "cached_tokens": traffic.cached_tokens,
            "output_tokens": traffic.output_tokens,
            "batch_share": a.batch_share,
            "batch_discount": a.batch_discount,
        },
    )


def find_capacity(
    model: str, gpu: str, profiles: Sequence[dict[str, Any]], published: Sequence[PublishedRow], slo: dict[str, float]
) -> Capacity | None:
    """Measured capacity within the SLO first, else the published figure, else ``None``."""
    best: Capacity | None = None
    for doc in profiles:
        if str(doc.get("model", "")).lower() != model or str(doc.get("gpu") or "").lower() != gpu:
            continue
        cap = capacity(doc, slo)
        if cap is not None and (best is None or cap.output_tokens_per_s > best.output_tokens_per_s):
            where = f"{doc.get('path', 'profile')} ({doc.get('engine')}, {doc.get('date')}, at {cap.load})"
            best = Capacity(model, gpu, cap.output_tokens_per_s, cap.ttft_p90_ms, cap.tpot_p90_ms, "measured", where)
    if best is not None:
        return best
    for row in published:
        if row.model == model and row.gpu == gpu:
            source = f"{row.source} ({row.engine}, {row.workload}, {row.date})"
            return Capacity(model, gpu, row.output_tokens_per_s, row.ttft_p90_ms, row.tpot_p90_ms, "published", source)
    return None


def replicas_for(peak_tps: float, per_gpu_tps: float, a: Assumptions) -> int:
    """GPUs to serve ``peak_tps`` at ``1 - headroom`` of capacity each, plus the spares."""
    return max(1, math.ceil(peak_tps / (per_gpu_tps * (1 - a.headroom)) - 1e-9)) + a.redundancy


def self_hosted_option(traffic: Traffic, gpu: GpuRow, cap: Capacity, a: Assumptions, *, spot: bool = False) -> Option:
    """The self-hosted option on ``gpu`` for the capacity's model (prices from the catalog row)."""
    hourly = gpu.spot_usd_per_hour if spot else gpu.on_demand_usd_per_hour
    assert hourly is not None
    peak = traffic.peak_output_tokens_per_s
    n = replicas_for(peak, cap.output_tokens_per_s, a)
    cost = n * hourly * HOURS_PER_MONTH
    mean_tps = traffic.output_tokens / (HOURS_PER_MONTH * 3600)
    tokens = traffic.input_tokens + traffic.output_tokens
    latency = (
        f"TTFT p90 {cap.ttft_p90_ms:.0f} ms, TPOT p90 {cap.tpot_p90_ms:.1f} ms"
        if cap.ttft_p90_ms is not None and cap.tpot_p90_ms is not None
        else "not published (SLO not checked)"
    )
    note = "published figure, not measured" if cap.kind == "published" else "measured"
    if spot:
        note += f"; spot: preemptible, a lost replica takes ~{gpu.cold_start_s or 0:.0f} s to replace (N+1 covers one)"
    return Option(
        name=f"{cap.model} on {gpu.gpu}{' spot' if spot else ''}",
        kind="self-hosted",
        monthly_usd=cost,
        usd_per_mtok=cost / tokens * 1e6 if tokens else 0.0,
        utilization=mean_tps / (n * cap.output_tokens_per_s),
        replicas=n,
        latency_at_peak=latency,
        note=note,
        inputs={
            "gpu": gpu.gpu,
            "usd_per_gpu_hour": hourly,
            "price": "spot" if spot else "on-demand",
            "catalog_source": gpu.source,
            "catalog_date": gpu.date,
            "hours_per_month": HOURS_PER_MONTH,
            "capacity_output_tokens_per_s": cap.output_tokens_per_s,
            "capacity_kind": cap.kind,
            "capacity_source": cap.source,
            "peak_output_tokens_per_s": peak,
            "headroom": a.headroom,
            "redundancy": a.redundancy,
        },
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """Options at the traffic's volume, the recommendation, and the break-even volume factor."""

    traffic: Traffic
    options: list[Option]
    best: Option
    break_even_factor: float | None
    assumptions: Assumptions
    problems: list[str]


OptionsAt = Callable[[Traffic], list[Option]]


def cheapest(options: Sequence[Option]) -> Option | None:
    """The cheapest feasible option."""
    ok = [o for o in options if o.feasible]
    return min(ok, key=lambda o: o.monthly_usd) if ok else None


def break_even(traffic: Traffic, options_at: OptionsAt, lo: float = 1e-3, hi: float = 1e4) -> float | None:
    """The smallest volume factor from which a self-hosted option is the cheapest (``None`` if never in range).

    API cost grows linearly with volume and self-hosting in steps, so the first crossing is found
    on a geometric grid and refined by bisection.
    """

    def self_wins(f: float) -> bool:
        best = cheapest(options_at(traffic.scaled(f)))
        return best is not None and best.kind == "self-hosted"

    grid: list[float] = [lo * (hi / lo) ** (i / 400) for i in range(401)]
    prev = grid[0]
    if self_wins(prev):
        return prev
    for f in grid[1:]:
        if self_wins(f):
            a, b = prev, f
            for _ in range(60):
                mid: float = math.sqrt(a * b)
                a, b = (a, mid) if self_wins(mid) else (mid, b)
            return b
        prev = f
    return None


def decide(traffic: Traffic, options_at: OptionsAt, a: Assumptions, problems: list[str]) -> Decision:
    """Price every option at the traffic's volume and find the break-even."""
    options = options_at(traffic)
    best = cheapest(options)
    if best is None:
        reasons = "; ".join(problems) or "every option missed the SLO"
        raise PlanError(f"no option can serve this traffic: {reasons}")
    options.sort(key=lambda o: (not o.feasible, o.monthly_usd))
    return Decision(traffic, options, best, break_even(traffic, options_at), a, problems)
