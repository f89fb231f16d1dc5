"""Machine-readable reports: JSON (one object per group) and CSV (one row per group)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tokenomy.ledger.record import LEVERS
from tokenomy.reports.model import Group, Report


def group_object(group: Group) -> dict[str, Any]:
    """The JSON object of one group (the documented keys first, derived ones after)."""
    sums, latency = group.sums, group.latency
    return {
        "group": group.name,
        "requests": sums.requests,
        "errors": sums.errors,
        "prompt_tokens": sums.prompt_tokens,
        "completion_tokens": sums.completion_tokens,
        "cost_usd": sums.cost_usd,
        "baseline_cost_usd": sums.baseline_cost_usd,
        "saved_usd": {lever: sums.saved_usd.get(lever, 0.0) for lever in LEVERS},
        "p50_latency_ms": latency.p50,
        "p95_latency_ms": latency.p95,
        "p99_latency_ms": latency.p99,
        "error_rate": sums.error_rate,
        "tokens_per_request": sums.tokens_per_request,
        "cost_per_1k_requests_usd": sums.cost_per_1k_requests_usd,
        "cached_tokens": sums.cached_tokens,
        "cached_input_share": sums.cached_input_share,
        "finished_answers": sums.finished,
        "length_stops": sums.length_stops,
        "length_stop_rate": sums.length_stop_rate,
        "cascade_requests": sums.cascade_requests,
        "student_share": sums.student_share,
    }


def to_json(report: Report) -> str:
    """A JSON list with one object per group; by task, each also carries its ``semantic_audits``
    (live precision of the semantic cache, ``null`` without audits)."""
    objects = [group_object(group) for group in report.groups]
    if report.query.by == "task" and report.semantic:
        audits = {row.task: row.as_json() for row in report.semantic}
        for obj in objects:
            obj["semantic_audits"] = audits.get(obj["group"])
    return json.dumps(objects, indent=2) + "\n"


CSV_COLUMNS: tuple[str, ...] = (
    "group",
    "requests",
    "errors",
    "error_rate",
    "prompt_tokens",
    "completion_tokens",
    "tokens_per_request",
    "cost_usd",
    "cost_per_1k_requests_usd",
    "baseline_cost_usd",
    "saved_usd",
    *(f"saved_{lever}_usd" for lever in LEVERS),
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "length_stop_rate",
    "student_share",
)
"""The CSV header (``saved_usd`` is the total over levers)."""


def to_csv(report: Report) -> str:
    """A header row and one row per group (empty cells for missing percentiles)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for group in report.groups:
        obj = group_object(group)
        saved = obj.pop("saved_usd")
        obj["saved_usd"] = group.sums.saved_total_usd
        obj.update({f"saved_{lever}_usd": saved[lever] for lever in LEVERS})
        writer.writerow(["" if obj[col] is None else obj[col] for col in CSV_COLUMNS])
    return out.getvalue()
