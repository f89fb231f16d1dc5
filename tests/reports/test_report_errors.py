"""Bad input and unreachable ledgers: one ``Error:`` line, a non-zero exit code, never a traceback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.reports.conftest import Ledger
from tests.reports.helpers import MODEL_YAML, assert_one_line_error, invoke

UNREACHABLE_DSN = "postgresql://report:secret-pw@127.0.0.1:1/ledger"


def pg_config(tmp_path: Path, dsn: str = UNREACHABLE_DSN) -> Path:
    path = tmp_path / "pg.yaml"
    path.write_text(f'ledger: {{store: postgres, dsn: "${{TOKENOMY_REPORT_TEST_DSN:-{dsn}}}"}}\n{MODEL_YAML}')
    return path


@pytest.mark.parametrize("value", ["2025-13-01", "yesterday", "7x", "2025-02-30", "03/01/2025", "-7d"])
def test_an_invalid_date_is_a_usage_error(ledger: Ledger, value: str) -> None:
    result = invoke("report", "--config", str(ledger.config), "--since", value)
    assert_one_line_error(result, 2, "--since", value)


def test_an_invalid_until_is_a_usage_error(ledger: Ledger) -> None:
    assert_one_line_error(invoke("report", "--config", str(ledger.config), "--until", "soon"), 2, "--until")


def test_an_unknown_grouping_is_a_usage_error(ledger: Ledger) -> None:
    result = invoke("report", "--config", str(ledger.config), "--by", "region")
    assert_one_line_error(result, 2, "--by", "region")


def test_an_unknown_format_is_a_usage_error(ledger: Ledger) -> None:
    assert_one_line_error(invoke("report", "--config", str(ledger.config), "--format", "xml"), 2, "--format")


def test_since_after_until_is_a_usage_error(ledger: Ledger) -> None:
    result = invoke("report", "--config", str(ledger.config), "--since", "2025-03-04", "--until", "2025-03-02")
    assert_one_line_error(result, 2, "--since must be earlier than --until")


def test_a_missing_ledger_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f'ledger: {{path: "{tmp_path / "nowhere" / "ledger.db"}"}}\n{MODEL_YAML}')
    assert_one_line_error(invoke("report", "--config", str(config)), 1, "no ledger at", "nowhere")
    assert not (tmp_path / "nowhere").exists()  # reading never creates a ledger


def test_a_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    config = tmp_path / "c.yaml"
    config.write_text(f'ledger: {{path: "{other}"}}\n{MODEL_YAML}')
    assert_one_line_error(invoke("report", "--config", str(config), "--format", "json"), 1, "requests", str(other))


def test_a_ledger_that_is_off(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"ledger: {{store: none}}\n{MODEL_YAML}")
    assert_one_line_error(invoke("report", "--config", str(config)), 1, "ledger.store: none")


def test_a_missing_or_broken_config_file(tmp_path: Path) -> None:
    assert_one_line_error(invoke("report", "--config", str(tmp_path / "missing.yaml")), 1, "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("ledger: {store: sqlite, colour: blue}\nmodels: []\n")
    assert_one_line_error(invoke("report", "--config", str(broken)), 1, "broken.yaml", "ledger.colour")


@pytest.mark.parametrize("fmt", ["json", "table", "html"])
def test_an_unreachable_postgres_is_one_line_without_the_password(tmp_path: Path, fmt: str) -> None:
    result = invoke("report", "--config", str(pg_config(tmp_path)), "--format", fmt, "--out", str(tmp_path / "o"))
    assert_one_line_error(result, 1, "127.0.0.1:1")
    assert "secret-pw" not in result.output
    assert not (tmp_path / "o").exists()


def test_a_postgres_dsn_variable_that_is_not_set(tmp_path: Path) -> None:
    config = tmp_path / "pg.yaml"
    config.write_text(f'ledger: {{store: postgres, dsn: "${{TOKENOMY_REPORT_UNSET_DSN}}"}}\n{MODEL_YAML}')
    assert_one_line_error(invoke("report", "--config", str(config)), 1, "TOKENOMY_REPORT_UNSET_DSN")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_as_a_real_process(ledger: Ledger, tmp_path: Path) -> None:
    done = _run("--config", str(ledger.config), "--format", "json", "--by", "language")
    assert done.returncode == 0, done.stderr
    assert sum(g["requests"] for g in json.loads(done.stdout)) == len(ledger.records)
    assert done.stderr == ""  # no progress noise when stderr is not a terminal

    failed = _run("--config", str(pg_config(tmp_path)), "--format", "json")
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith("Error: cannot connect to the ledger postgresql://report@127.0.0.1:1/ledger")

    bad = _run("--config", str(ledger.config), "--since", "last tuesday")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("Error: Invalid value for '--since'")
