"""The Grafana dashboard and Prometheus config in deploy/: valid, and only about metrics the gateway exposes.

Every PromQL expression of the dashboard, with its template variables filled in, goes through
``promtool check rules`` (the real parser); every metric and label it names must exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from tokenomy.telemetry import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/tokenomy-dashboard.json"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: prometheus)")

# What Grafana puts in place of its variables, for the syntax check.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "6h",
    "$task": "summarize|.*",
    "$model": "gpt-4o-mini",
}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}
# Labels Prometheus adds to every scraped series, and the histogram bucket label.
TARGET_LABELS = {"instance", "job", "le"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every query of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in walk_panels(load()["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):  # longest first: $__rate_interval before $__range
        expr = expr.replace("${" + name[1:] + "}", VARIABLES[name]).replace(name, VARIABLES[name])
    return expr


def exposed() -> dict[str, set[str]]:
    """Every series name the gateway's registry exposes, with the labels of its metric."""
    wrappers = {w._name: w for w in vars(metrics).values() if isinstance(w, MetricWrapperBase | metrics.SampledCounter)}
    names: dict[str, set[str]] = {}
    for family in metrics.REGISTRY.collect():
        labels = set(wrappers[family.name]._labelnames)
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = labels
    return names


def referenced(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", " ".join(re.findall(r"\{([^}]*)\}", text))))
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels |= {name.strip() for name in clause.split(",") if name.strip()}
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return {w for w in words if w not in KEYWORDS}, labels


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_dashboard_is_importable_json() -> None:
    board = load()
    assert board["title"] and board["uid"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("task", "model"):
        assert variables[name]["type"] == "query"
        match = re.fullmatch(r"label_values\((\w+)(?:\{.*\})?, (\w+)\)", variables[name]["query"])
        assert match is not None, variables[name]["query"]
        metric, label = match.groups()
        assert label in exposed()[metric], variables[name]["query"]
    panels = [p for p in walk_panels(board["panels"]) if p["type"] != "row"]
    assert len(panels) >= 20
    ids = [p["id"] for p in walk_panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_covers_the_gateway_metrics() -> None:
    """Spend, savings, tokens, latency, TTFT, cache, errors and health all have panels."""
    used = set().union(*(referenced(expr)[0] for _, expr in exprs()))
    for name in (
        "tokenomy_cost_usd_total",
        "tokenomy_baseline_cost_usd_total",
        "tokenomy_saved_usd_total",
        "tokenomy_tokens_total",
        "tokenomy_requests_total",
        "tokenomy_request_duration_seconds_bucket",
        "tokenomy_time_to_first_token_seconds_bucket",
        "tokenomy_cache_outcomes_total",
        "tokenomy_upstream_errors_total",
        "tokenomy_ledger_queue_depth",
        "tokenomy_ledger_lag_seconds",
        "tokenomy_ledger_records_spilled_total",
        "tokenomy_in_flight_requests",
        "tokenomy_shed_requests_total",
    ):
        assert name in used, f"no panel shows {name}"
    all_exprs = " ".join(expr for _, expr in exprs())
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(tokenomy_time_to_first_token" in all_exprs


def test_exprs_name_only_exposed_metrics_and_labels() -> None:
    names = exposed()
    assert "tokenomy_requests_total" in names and "tokenomy_request_duration_seconds_bucket" in names
    problems = []
    for title, expr in exprs():
        used_metrics, used_labels = referenced(expr)
        assert used_metrics, f"{title}: no metric found in {expr}"
        unknown = used_metrics - names.keys()
        if unknown:
            problems.append(f"{title}: unknown metrics {sorted(unknown)}")
            continue
        allowed = TARGET_LABELS.union(*(names[m] for m in used_metrics))
        if used_labels - allowed:
            problems.append(f"{title}: unknown labels {sorted(used_labels - allowed)} in {expr}")
    assert not problems, "\n".join(problems)


def test_name_extraction_catches_mistakes() -> None:
    """The checker itself: a misspelt metric or label is reported."""
    used_metrics, used_labels = referenced(
        'sum by (lever) (rate(tokenomy_saved_usd{task=~"a|b", x!="y"}[5m])) / on (task) group_left tokenomy_up'
    )
    assert used_metrics == {"tokenomy_saved_usd", "tokenomy_up"}
    assert used_labels == {"lever", "task", "x"}
    assert "tokenomy_saved_usd" not in exposed()


@needs_promtool
def test_exprs_parse_with_promtool(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query_{i}", "expr": substitute(expr)} for i, (_, expr) in enumerate(exprs())]
    for rule in rules:
        assert "$" not in rule["expr"], f"unsubstituted variable in {rule['expr']}"
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@needs_promtool
def test_promtool_rejects_a_broken_expr(tmp_path: Path) -> None:
    """The syntax check is real: a bad expression fails it."""
    path = tmp_path / "bad.yml"
    rule = {"record": "dashboard:bad", "expr": substitute("sum by (le (rate(tokenomy_requests_total[$__range]))")}
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [rule]}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode != 0


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "tokenomy"]
    assert job["metrics_path"] == "/metrics"
