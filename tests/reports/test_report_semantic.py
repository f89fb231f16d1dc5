"""The report's live-precision section: audited semantic hits per task, from the gateway's audit file."""

from __future__ import annotations

from pathlib import Path

from tests.reports.conftest import Ledger
from tests.reports.helpers import invoke, report_json

from tokenomy.cache.semantic.live import LivePrecision
from tokenomy.cache.semantic.stats import lower_bound, upper_bound


def config_with_index(ledger: Ledger, tmp_path: Path) -> Path:
    path = tmp_path / "tokenomy.yaml"
    index = tmp_path / "semantic.usearch"
    path.write_text(ledger.config.read_text() + f'cache: {{semantic: {{enabled: true, index_path: "{index}"}}}}\n')
    return path


def test_audits_per_task_reach_the_table_and_the_json(ledger: Ledger, tmp_path: Path) -> None:
    live = LivePrecision(0.01, path=tmp_path / "semantic-audits.json")
    for i in range(40):
        live.record("chat", false_hit=i in (3, 17))
    live.save()
    config = config_with_index(ledger, tmp_path)
    rows = {g["group"]: g for g in report_json(config, "--by", "task")}
    audits = rows["chat"]["semantic_audits"]
    assert isinstance(audits, dict)
    window = live.tasks["chat"]  # the error budget may have moved the threshold and restarted the window
    assert audits["total_audits"] == 40 and audits["total_false_hits"] == 2
    assert audits["audits"] == window.audits and audits["false_hits"] == window.false_hits
    assert audits["false_hit_rate_low95"] == lower_bound(window.false_hits, window.audits)
    assert audits["false_hit_rate_high95"] == upper_bound(window.false_hits, window.audits)
    assert audits["threshold_offset"] == window.offset
    assert rows["code"]["semantic_audits"] is None  # no audits for that task
    text = invoke("report", "--config", str(config)).output
    assert "Semantic cache: live precision" in text and "2/40" in text


def test_a_suspended_task_says_so(ledger: Ledger, tmp_path: Path) -> None:
    live = LivePrecision(0.01, path=tmp_path / "semantic-audits.json")
    for _ in range(200):  # half the audits false: tightened to the strictest threshold, then suspended
        live.record("chat", false_hit=True)
        live.record("chat", false_hit=False)
    live.save()
    assert live.suspended("chat")
    config = config_with_index(ledger, tmp_path)
    rows = {g["group"]: g for g in report_json(config, "--by", "task")}
    assert rows["chat"]["semantic_audits"]["suspended"] is True
    assert "suspended" in invoke("report", "--config", str(config)).output


def test_no_audit_file_leaves_the_report_as_it_was(ledger: Ledger, tmp_path: Path) -> None:
    config = config_with_index(ledger, tmp_path)
    assert all("semantic_audits" not in g for g in report_json(config, "--by", "task"))
    assert "Semantic cache" not in invoke("report", "--config", str(config)).output


def test_unreadable_audit_file_is_ignored(ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "semantic-audits.json").write_text("{not json")
    config = config_with_index(ledger, tmp_path)
    assert "Semantic cache" not in invoke("report", "--config", str(config)).output
