"""Prometheus counters of the optimize stage (in the gateway's registry)."""

from __future__ import annotations

from prometheus_client import Counter

from tokenomy.telemetry.metrics import REGISTRY

FAILURES = Counter(
    "tokenomy_optimize_failures",
    "Optimize transforms that failed; the request went on unchanged by them.",
    ["transform"],
    registry=REGISTRY,
)
TRUNCATED = Counter(
    "tokenomy_optimize_truncated",
    "Answers cut short (finish_reason length) by an output cap the optimize stage set, by task.",
    ["task"],
    registry=REGISTRY,
)
