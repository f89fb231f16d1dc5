"""Synthetic ledger records for the report tests, and the expected report computed from them in plain Python.

Money amounts are multiples of 1/256 dollar, so every sum is exact in binary floating point
whatever order the database adds them in: the tests compare them with ``==``.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tokenomy.cli import main
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.reports.model import Group, GroupBy, Report, ReportQuery, Sections, Window
from tokenomy.reports.query import run_query

BASE = datetime(2025, 3, 1, tzinfo=UTC).timestamp()
"""The first record's day: 2025-03-01 (UTC); records span five days from there."""

LEVERS = ("cache", "routing", "compression", "batching")
SECRET_PROMPT = "Summarise the quarterly numbers for ACME-SECRET-7731"

MODEL_YAML = """models:
  - name: fast
    deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o-mini}]
"""


# routes a cascade records (cascade:NAME->MODEL@STEP[/INNER]); step 0 is the student in a student-first cascade
ROUTES = (None, "cascade:c->s@0", "cascade:c->t@1", "cascade:c->s@0/learned:x", "cascade:c->t@10", "learned:y")


def records(n: int = 400, seed: int = 3, start: float = BASE, span_s: float = 5 * 86400) -> list[LedgerRecord]:
    """``n`` varied records between ``start`` and ``start + span_s`` (nulls, errors and repeats included)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        served = rng.choice(["gpt-4o-mini", "gpt-4o", None])
        cost = rng.randint(0, 512) / 256
        saved = {lever: rng.randint(0, 64) / 256 for lever in LEVERS}
        hit = rng.random() < 0.15
        prompt_id = rng.choice([0, 0, 0, 1, 1, 2, 3, 4, 5])
        out.append(
            LedgerRecord(
                request_id=f"req-{seed}-{i}",
                ts=start + rng.random() * span_s,
                api_key=rng.choice(["alice", "bob", None]),
                task=rng.choice(["chat", "summarize", "code"]),
                requested_model="fast",
                served_model=served,
                status=rng.choice([200] * 12 + [400, 429, 500]),
                prompt_tokens=rng.randint(1, 4000),
                completion_tokens=rng.randint(0, 800),
                language=rng.choice(["en", "fr", "de", None]),
                latency_ms=rng.lognormvariate(6, 0.7),
                cache="hit-exact" if hit else "miss",
                cost_usd=cost,
                baseline_cost_usd=cost + sum(saved.values()),
                saved_cache_usd=saved["cache"],
                saved_routing_usd=saved["routing"],
                saved_compression_usd=saved["compression"],
                saved_batching_usd=saved["batching"],
                prompt_hash=None if prompt_id == 5 else hashlib.sha256(bytes([prompt_id])).hexdigest()[:32],
                prompt=SECRET_PROMPT if prompt_id == 2 else None,
                tenant=rng.choice(["team-a", "team-b", "default"]),
                price_source=rng.choice(["config", "genai-prices", "default", "unknown"]),
                finish_reason=FINISH_REASONS[i % len(FINISH_REASONS)],  # None: written before it was recorded
                route=ROUTES[i % len(ROUTES)],
            )
        )
    return out


FINISH_REASONS = (None, "stop", "stop", "length", "tool_calls", "stop", "length")


def write_ledger(path: Path, items: Iterable[LedgerRecord]) -> None:
    """Write records through the real SQLite store."""
    store = SqliteStore(path)
    store.open()
    store.write(list(items))
    store.close()


def sqlite_config(tmp: Path, ledger: Path) -> Path:
    """A config file whose ledger is ``ledger``."""
    path = tmp / "tokenomy.yaml"
    path.write_text(f'ledger: {{store: sqlite, path: "{ledger}"}}\n{MODEL_YAML}')
    return path


KEYS: dict[str, Callable[[LedgerRecord], str]] = {
    "task": lambda r: r.task,
    "model": lambda r: r.served_model or r.requested_model,
    "key": lambda r: r.api_key or "(none)",
    "tenant": lambda r: r.tenant,
    "team": lambda r: r.tenant,
    "language": lambda r: r.language or "unknown",
    "day": lambda r: datetime.fromtimestamp(r.ts, UTC).strftime("%Y-%m-%d"),
}


def expected(items: Iterable[LedgerRecord], by: str) -> dict[str, dict[str, Any]]:
    """The report's groups, computed directly from the records (percentiles with ``statistics``)."""
    grouped: dict[str, list[LedgerRecord]] = defaultdict(list)
    for record in items:
        grouped[KEYS[by](record)].append(record)
    out = {}
    for name, rows in grouped.items():
        latencies = [r.latency_ms for r in rows]
        cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(rows) > 1 else [latencies[0]] * 99
        out[name] = {
            "group": name,
            "requests": len(rows),
            "errors": sum(1 for r in rows if r.status >= 400),
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "cost_usd": sum(r.cost_usd for r in rows),
            "baseline_cost_usd": sum(r.baseline_cost_usd for r in rows),
            "saved_usd": {lever: sum(getattr(r, f"saved_{lever}_usd") for r in rows) for lever in LEVERS},
            "p50_latency_ms": cuts[49],
            "p95_latency_ms": cuts[94],
            **_length_stops(rows),
            "cascade_requests": sum(1 for r in rows if (r.route or "").startswith("cascade:")),
            "student_share": (
                sum(1 for r in rows if (r.route or "").split("/")[0].endswith("@0"))
                / max(1, sum(1 for r in rows if (r.route or "").startswith("cascade:")))
            ),
        }
    return out


def _length_stops(rows: list[LedgerRecord]) -> dict[str, Any]:
    finished = sum(1 for r in rows if r.finish_reason is not None)
    stops = sum(1 for r in rows if r.finish_reason == "length")
    rate = stops / finished if finished else None
    return {"finished_answers": finished, "length_stops": stops, "length_stop_rate": rate}


def invoke(*args: str) -> Result:
    """Run ``tokenomy`` in-process; stdout and stderr stay apart."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """A failed run: the exit code, no traceback, and an ``Error:`` line that says it all on one line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)


def report_json(config: Path, *args: str) -> list[dict[str, object]]:
    result = invoke("report", "--config", str(config), "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


def assert_groups(got: list[dict[str, object]], want: dict[str, dict[str, object]]) -> None:
    assert sorted(str(g["group"]) for g in got) == sorted(want)
    for group in got:
        exp = want[str(group["group"])]
        for key in (
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "baseline_cost_usd",
            "saved_usd",
            "finished_answers",
            "length_stops",
            "length_stop_rate",
            "cascade_requests",
        ):
            assert group[key] == exp[key], (group["group"], key, group[key], exp[key])
        assert group["student_share"] == pytest.approx(exp["student_share"]), group["group"]
        for key in ("p50_latency_ms", "p95_latency_ms"):
            assert group[key] == pytest.approx(exp[key], rel=1e-9), (group["group"], key)


FULL = Sections(economy=True, series=True, top_prompts=5, show_prompts=True)


def full_report(store: LedgerStore, window: Window | None = None, by: GroupBy = "task") -> Report:
    """A report with every section, straight from the query layer."""
    return run_query(store, ReportQuery(by=by, window=window or Window(), sections=FULL))


def sums_by(items: list[LedgerRecord], key: str) -> dict[str, tuple[int, int, float]]:
    out: dict[str, tuple[int, int, float]] = defaultdict(lambda: (0, 0, 0.0))
    for r in items:
        name = getattr(r, key) or "unknown"
        n, tokens, cost = out[name]
        out[name] = (n + 1, tokens + r.prompt_tokens + r.completion_tokens, cost + r.cost_usd)
    return dict(out)


def as_tuples(groups: list[Group]) -> dict[str, tuple[int, int, float]]:
    return {g.name: (g.sums.requests, g.sums.tokens, g.sums.cost_usd) for g in groups}


def check_full_report(report: Report, items: list[LedgerRecord]) -> None:
    """Token economy by task and language, daily series, totals and prompts all match the records."""
    assert as_tuples(report.by_task) == sums_by(items, "task")
    assert as_tuples(report.by_language) == sums_by(items, "language")
    for group in report.by_task:
        rows = [r for r in items if r.task == group.name]
        want = _length_stops(rows)
        assert (group.sums.finished, group.sums.length_stops) == (want["finished_answers"], want["length_stops"])
        assert group.sums.length_stop_rate == want["length_stop_rate"]
    assert report.total.sums.requests == len(items)
    assert report.total.sums.cost_usd == sum(r.cost_usd for r in items)
    lat = sorted(r.latency_ms for r in items)
    assert report.total.latency.p50 == pytest.approx(statistics.median(lat), rel=1e-9)
    assert report.bucket_s == 86400
    days: dict[float, float] = defaultdict(float)
    for r in items:
        days[(r.ts // 86400) * 86400] += r.baseline_cost_usd
    assert [(start, sums.baseline_cost_usd) for start, sums in report.series] == sorted(days.items())
    spend: dict[str, float] = defaultdict(float)
    for r in items:
        if r.prompt_hash:
            spend[r.prompt_hash] += r.cost_usd
    top = sorted(spend.items(), key=lambda kv: -kv[1])
    assert [(p.prompt_hash, p.cost_usd) for p in report.top_prompts] == top
    assert SECRET_PROMPT in {p.prompt for p in report.top_prompts}
