"""Fixtures: a SQLite ledger filled with known records and a config file pointing at it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.reports.helpers import records, sqlite_config, write_ledger

from tokenomy.ledger.record import LedgerRecord


@dataclass(frozen=True)
class Ledger:
    """A written ledger: its config file, database file and the records in it."""

    config: Path
    path: Path
    records: list[LedgerRecord]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    tmp = tmp_path_factory.mktemp("report-ledger")
    path = tmp / "ledger.db"
    items = records()
    write_ledger(path, items)
    return Ledger(sqlite_config(tmp, path), path, items)
