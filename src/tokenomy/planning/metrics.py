"""Serving metrics from timed requests, as the established serving benchmarks define them.

Per successful request (vLLM's ``benchmark_serving`` and GenAI-Perf use the same definitions):

- TTFT: time from sending the request to the first content chunk.
- TPOT: ``(E2E - TTFT) / (output tokens - 1)``, the mean time per token after the first
  (requests with one output token have none).
- ITL: every gap between consecutive content chunks, pooled over all requests.
- E2E: time from sending to the end of the stream.

Throughput divides by the run's wall time. Goodput is the number of requests per second that
succeeded *and* met every SLO bound given (``ttft_ms``, ``tpot_ms``, ``e2e_ms``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tokenomy.planning.loadgen import LoadResult, RequestResult
from tokenomy.planning.slo import SLO_KEYS, SloError, parse_slo

__all__ = ["SLO_KEYS", "SloError", "Stat", "Summary", "parse_slo", "summarize"]

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True, slots=True)
class Stat:
    """Mean and percentiles of one metric in milliseconds (``None`` without samples)."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    n: int = 0

    @staticmethod
    def of(values_ms: list[float]) -> Stat:
        """The summary of ``values_ms``."""
        if not values_ms:
            return Stat()
        arr = np.asarray(values_ms, dtype=float)
        p50, p90, p99 = (float(v) for v in np.percentile(arr, PERCENTILES))
        return Stat(float(arr.mean()), p50, p90, p99, len(values_ms))


@dataclass(frozen=True, slots=True)
class Summary:
    """One load level's figures."""

    load: str  # "rate=10/s" or "concurrency=8"
    requests: int
    succeeded: int
    duration_s: float
    request_throughput: float
    output_token_throughput: float
    input_token_throughput: float
    goodput: float | None
    ttft: Stat
    tpot: Stat
    itl: Stat
    e2e: Stat
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_share: float = 0.0
    client_loop_lag_ms_p50: float = 0.0
    client_send_lateness_ms_p99: float | None = None
    client_saturated: bool = False
    client_cpu_ms_per_request: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def request_metrics(r: RequestResult) -> tuple[float, float | None, list[float], float]:
    """(TTFT ms, TPOT ms or ``None``, ITL gaps ms, E2E ms) of a successful request."""
    ttft = _ms(r.token_times[0] - r.start)
    e2e = _ms(r.end - r.start)
    tpot = (e2e - ttft) / (r.output_tokens - 1) if r.output_tokens > 1 else None
    gaps = [_ms(b - a) for a, b in zip(r.token_times, r.token_times[1:], strict=False)]
    return ttft, tpot, gaps, e2e


def meets(slo: dict[str, float], ttft: float, tpot: float | None, e2e: float) -> bool:
    """Whether one request met every bound in ``slo``."""
    if "ttft_ms" in slo and ttft > slo["ttft_ms"]:
        return False
    if "tpot_ms" in slo and tpot is not None and tpot > slo["tpot_ms"]:
        return False
    return not ("e2e_ms" in slo and e2e > slo["e2e_ms"])


def summarize(load: str, run: LoadResult, slo: dict[str, float]) -> Summary:
    """The figures of one run."""
    ttfts: list[float] = []
    tpots: list[float] = []
    itls: list[float] = []
    e2es: list[float] = []
    errors: Counter[str] = Counter()
    good = out_tokens = in_tokens = 0
    for r in run.results:
        if r.error is not None:
            errors[r.error] += 1
            continue
        ttft, tpot, gaps, e2e = request_metrics(r)
        ttfts.append(ttft)
        e2es.append(e2e)
        itls.extend(gaps)
        if tpot is not None:
            tpots.append(tpot)
        out_tokens += r.output_tokens
        in_tokens += r.prompt_tokens
        good += meets(slo, ttft, tpot, e2e)
    wall = run.duration_s or float("nan")
    lag = sorted(run.loop_lag_ms)
    late = sorted(run.send_lateness_ms)
    return Summary(
        load=load,
        requests=len(run.results),
        succeeded=len(e2es),
        duration_s=run.duration_s,
        request_throughput=len(e2es) / wall,
        output_token_throughput=out_tokens / wall,
        input_token_throughput=in_tokens / wall,
        goodput=good / wall if slo else None,
        ttft=Stat.of(ttfts),
        tpot=Stat.of(tpots),
        itl=Stat.of(itls),
        e2e=Stat.of(e2es),
        errors=dict(errors.most_common()),
        client_cpu_share=run.cpu_share,
        client_loop_lag_ms_p50=lag[len(lag) // 2] if lag else 0.0,
        client_send_lateness_ms_p99=late[min(len(late) - 1, int(0.99 * len(late)))] if late else None,
        client_saturated=run.client_saturated,
        client_cpu_ms_per_request=run.cpu_s * 1000 / len(run.results) if run.results else 0.0,
    )
