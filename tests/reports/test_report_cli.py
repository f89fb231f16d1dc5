"""``tokenomy report`` through the real CLI over a SQLite ledger: numbers, grouping, windows, formats."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime
from importlib import resources
from pathlib import Path

import pytest
from tests.reports.conftest import Ledger
from tests.reports.helpers import (
    LEVERS,
    SECRET_PROMPT,
    assert_groups,
    expected,
    invoke,
    records,
    report_json,
    sqlite_config,
    write_ledger,
)

from tokenomy.ledger.record import LedgerRecord

REQUIRED_KEYS = {
    "group",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "saved_usd",
    "p50_latency_ms",
    "p95_latency_ms",
}


@pytest.mark.parametrize("by", ["task", "model", "key", "tenant", "team", "language", "day"])
def test_json_numbers_match_the_records_for_each_grouping(ledger: Ledger, by: str) -> None:
    got = report_json(ledger.config, "--by", by)
    want = expected(ledger.records, by)
    assert len(want) >= 3  # the data really has several groups per dimension
    assert_groups(got, want)


def test_json_objects_have_exactly_the_documented_keys(ledger: Ledger) -> None:
    got = report_json(ledger.config)
    assert got
    for group in got:
        assert set(group) >= REQUIRED_KEYS
        assert isinstance(group["saved_usd"], dict)
        assert list(group["saved_usd"]) == list(LEVERS)
        assert isinstance(group["requests"], int) and isinstance(group["errors"], int)
    assert sum(int(str(g["requests"])) for g in got) == len(ledger.records)


def test_default_grouping_is_by_task(ledger: Ledger) -> None:
    assert {g["group"] for g in report_json(ledger.config)} == {"chat", "summarize", "code"}


def test_nulls_get_their_documented_names(ledger: Ledger) -> None:
    assert "(none)" in {g["group"] for g in report_json(ledger.config, "--by", "key")}
    assert "unknown" in {g["group"] for g in report_json(ledger.config, "--by", "language")}
    # served_model null falls back to the requested model
    assert "fast" in {g["group"] for g in report_json(ledger.config, "--by", "model")}


def _between(items: list[LedgerRecord], since: str, until: str) -> list[LedgerRecord]:
    lo, hi = datetime.fromisoformat(since).timestamp(), datetime.fromisoformat(until).timestamp()
    return [r for r in items if lo <= r.ts < hi]


def test_since_and_until_dates_bound_the_window_and_until_includes_its_day(ledger: Ledger) -> None:
    got = report_json(ledger.config, "--by", "day", "--since", "2025-03-02", "--until", "2025-03-03")
    assert [g["group"] for g in got] == ["2025-03-02", "2025-03-03"]
    inside = _between(ledger.records, "2025-03-02T00:00:00+00:00", "2025-03-04T00:00:00+00:00")
    assert_groups(got, expected(inside, "day"))


def test_since_and_until_datetimes_respect_zones_and_default_to_utc(ledger: Ledger) -> None:
    since, until = "2025-03-02T06:30:00+02:00", "2025-03-04T12:00:00"
    got = report_json(ledger.config, "--by", "task", "--since", since, "--until", until)
    inside = _between(ledger.records, since, until + "+00:00")
    assert 0 < len(inside) < len(ledger.records)
    assert_groups(got, expected(inside, "task"))


def test_relative_durations(tmp_path: Path) -> None:
    now = time.time()
    recent = records(30, seed=11, start=now - 3600, span_s=1800)  # the last hour
    older = records(30, seed=12, start=now - 4 * 86400, span_s=3600)  # four days ago
    oldest = records(30, seed=13, start=now - 20 * 86400, span_s=3600)  # twenty days ago
    write_ledger(tmp_path / "l.db", [*recent, *older, *oldest])
    config = sqlite_config(tmp_path, tmp_path / "l.db")
    assert_groups(report_json(config, "--by", "key", "--since", "2d"), expected(recent, "key"))
    assert_groups(report_json(config, "--by", "key", "--since", "7d", "--until", "24h"), expected(older, "key"))
    assert_groups(report_json(config, "--by", "key", "--since", "3w", "--until", "10080m"), expected(oldest, "key"))
    assert_groups(report_json(config, "--by", "key", "--until", "90h"), expected([*older, *oldest], "key"))


def test_an_empty_window_is_an_empty_list(ledger: Ledger) -> None:
    assert report_json(ledger.config, "--since", "2030-01-01") == []


def test_csv_has_a_header_and_one_row_per_group(ledger: Ledger) -> None:
    result = invoke("report", "--config", str(ledger.config), "--format", "csv", "--by", "language")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    header = result.stdout.splitlines()[0].split(",")
    assert header[:3] == ["group", "requests", "errors"]
    for column in (
        "cost_usd",
        "baseline_cost_usd",
        "saved_cache_usd",
        "saved_routing_usd",
        "saved_compression_usd",
        "saved_batching_usd",
        "p50_latency_ms",
        "p95_latency_ms",
        "prompt_tokens",
        "completion_tokens",
    ):
        assert column in header
    want = expected(ledger.records, "language")
    assert sorted(r["group"] for r in rows) == sorted(want)
    for row in rows:
        exp = want[row["group"]]
        assert int(row["requests"]) == exp["requests"]
        assert int(row["errors"]) == exp["errors"]
        assert float(row["cost_usd"]) == exp["cost_usd"]
        assert float(row["saved_routing_usd"]) == exp["saved_usd"]["routing"]
        assert float(row["p95_latency_ms"]) == pytest.approx(exp["p95_latency_ms"], rel=1e-9)


def _spend_by_hash(items: list[LedgerRecord]) -> list[str]:
    spend: dict[str, float] = {}
    for r in items:
        if r.prompt_hash is not None:
            spend[r.prompt_hash] = spend.get(r.prompt_hash, 0.0) + r.cost_usd
    return sorted(spend, key=lambda h: -spend[h])


def test_table_report_shows_every_section_and_hashes_prompts(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    result = invoke("report", "--config", str(ledger.config), "--by", "model", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    text = out.read_text()
    assert "\x1b[" not in text  # no colour codes in a file
    for heading in (
        "Summary",
        "By model",
        "Savings by lever",
        "Token economy by task",
        "Token economy by language",
        "Most expensive prompts",
    ):
        assert heading in text
    for name in ("gpt-4o-mini", "gpt-4o", "fast", "summarize", "unknown"):
        assert name in text
    total = sum(r.cost_usd for r in ledger.records)
    assert f"${total:,.2f}" in text
    ranked = _spend_by_hash(ledger.records)
    positions = [text.index(h) for h in ranked]
    assert positions == sorted(positions)  # most expensive first
    assert SECRET_PROMPT not in text


def test_show_prompts_reveals_stored_prompt_text(ledger: Ledger) -> None:
    hidden = invoke("report", "--config", str(ledger.config))
    shown = invoke("report", "--config", str(ledger.config), "--show-prompts")
    assert hidden.exit_code == shown.exit_code == 0
    assert "ACME-SECRET-7731" not in hidden.stdout
    assert "ACME-SECRET-7731" in shown.stdout
    assert "(not stored)" in shown.stdout  # hashes whose text the ledger did not keep


_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("show", [False, True])
def test_html_report_is_one_self_contained_file_with_charts(ledger: Ledger, tmp_path: Path, show: bool) -> None:
    out = tmp_path / "report.html"
    args = ["report", "--config", str(ledger.config), "--format", "html", "--out", str(out)]
    result = invoke(*args, *(["--show-prompts"] if show else []))
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    # the dashboard's chart module and the report's figures, inline (drawn in a browser: test_html_browser.py)
    chart_module = resources.files("tokenomy.dashboard").joinpath("static", "chart.js").read_text("utf-8")
    assert chart_module in html and 'id="report-data"' in html  # the dashboard's module, verbatim
    for chart in ("cost-chart", "lever-chart", "task-cost-chart", "language-token-chart"):
        assert f'id="{chart}"' in html
    assert not _EXTERNAL.search(html)
    assert "<link" not in html and "<script src" not in html
    for heading in ("Cost over time", "Savings by lever", "Token economy", "Most expensive prompts"):
        assert heading in html
    assert _spend_by_hash(ledger.records)[0] in html
    assert ("ACME-SECRET-7731" in html) is show


def test_html_of_an_empty_window_still_renders(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    result = invoke(
        "report", "--config", str(ledger.config), "--format", "html", "--since", "2030-01-01", "--out", str(out)
    )
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    assert 'id="report-data"' in html and '"series":[]' in html


def test_html_goes_to_stdout_when_piped(ledger: Ledger) -> None:
    result = invoke("report", "--config", str(ledger.config), "--format", "html", "--by", "day")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert "2025-03-05" in result.stdout


def test_table_says_how_requests_were_priced_and_compares_with_a_hosted_model(ledger: Ledger) -> None:
    result = invoke("report", "--config", str(ledger.config))
    assert result.exit_code == 0, result.output
    text = result.stdout
    for kind, label in [
        ("config", "configured prices"),
        ("genai-prices", "price database (genai-prices)"),
        ("default", "default machine cost (embedded models)"),
        ("unknown", "unknown price, counted as $0"),
    ]:
        count = sum(1 for r in ledger.records if r.price_source == kind)
        assert re.search(rf"priced: {re.escape(label)}[\s│]+{count:,} requests", text), (label, text)
    served = [r for r in ledger.records if r.status < 400]
    prompt, completion = sum(r.prompt_tokens for r in served), sum(r.completion_tokens for r in served)
    assert "compare with gpt-4o-mini (not a saving)" in text
    assert f"for the same {prompt:,} + {completion:,} tokens at list price" in text
    assert "compare with" not in invoke("report", "--config", str(ledger.config), "--compare-with", "").stdout


def test_token_economy_shows_each_tasks_share_of_answers_cut_at_the_limit(ledger: Ledger, tmp_path: Path) -> None:
    """An output cap that truncates answers is visible per task: ``share (cut/answers with a reason)``."""
    out = tmp_path / "report.txt"
    assert invoke("report", "--config", str(ledger.config), "--out", str(out)).exit_code == 0
    economy = out.read_text().split("Token economy by task")[1].split("Token economy by language")[0]
    assert "cut at limit" in economy
    for task in {r.task for r in ledger.records}:
        rows = [r for r in ledger.records if r.task == task]
        answered = sum(1 for r in rows if r.finish_reason is not None)
        cut = sum(1 for r in rows if r.finish_reason == "length")
        line = next(line for line in economy.splitlines() if f" {task} " in line)
        assert f"│ {cut / answered * 100:.1f}% ({cut}/{answered}) │" in line, line
