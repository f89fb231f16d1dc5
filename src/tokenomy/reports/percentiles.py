"""Exact latency percentiles per group from one fetched column (the SQLite path).

SQLite has no percentile aggregate, so the report fetches ``(group, latency_ms)`` for the window
once and numpy does the rest: one stable sort by group, then ``numpy.percentile`` (linear
interpolation, the same definition as PostgreSQL's ``percentile_cont``) on each group's slice.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from tokenomy.reports.model import PERCENTILES, Latency

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where it is used: the gateway's dashboard imports the report queries, and numpy
# would add ~16 MB to every gateway process's idle memory for a page most never open.


def latency_of(values: np.ndarray | Sequence[float]) -> Latency:
    """The percentiles of ``values`` (all ``None`` when empty)."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return Latency()
    p50, p95, p99 = (float(v) for v in np.percentile(arr, PERCENTILES))
    return Latency(p50, p95, p99)


def grouped(rows: Sequence[tuple[Hashable, float]]) -> tuple[dict[Hashable, Latency], Latency]:
    """Percentiles per group and over all rows, from ``(group, latency)`` pairs."""
    import numpy as np

    codes_of: dict[Hashable, int] = {}
    n = len(rows)
    codes = np.fromiter((codes_of.setdefault(g, len(codes_of)) for g, _ in rows), dtype=np.int64, count=n)
    lat = np.fromiter((v for _, v in rows), dtype=np.float64, count=n)
    overall = latency_of(lat)
    if not n:
        return {}, overall
    order = np.argsort(codes, kind="stable")
    codes, lat = codes[order], lat[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], n]
    names = list(codes_of)
    per_group = {names[int(codes[a])]: latency_of(lat[a:b]) for a, b in zip(starts, ends, strict=True)}
    return per_group, overall
