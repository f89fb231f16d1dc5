"""The same report over a PostgreSQL ledger: the SQL runs on both dialects and gives the same numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.reports.helpers import (
    BASE,
    MODEL_YAML,
    assert_groups,
    check_full_report,
    expected,
    full_report,
    invoke,
    records,
    report_json,
)
from tests.support.postgres import PostgresServer, pg_bin

from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.postgres import PostgresStore
from tokenomy.reports.model import Window


@dataclass(frozen=True)
class PgLedger:
    config: Path
    dsn: str
    records: list[LedgerRecord]


@pytest.fixture(scope="module")
def pg_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgLedger]:
    try:
        pg_bin()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    server = PostgresServer()
    server.start()
    try:
        with server.database() as dsn:
            items = records()
            store = PostgresStore(dsn)
            store.open()
            store.write(items)
            store.close()
            config = tmp_path_factory.mktemp("pg-report") / "tokenomy.yaml"
            config.write_text(f'ledger: {{store: postgres, dsn: "${{TOKENOMY_REPORT_PG_DSN:-{dsn}}}"}}\n{MODEL_YAML}')
            yield PgLedger(config, dsn, items)
    finally:
        server.destroy()


@pytest.mark.parametrize("by", ["task", "model", "key", "language", "day"])
def test_json_numbers_match_on_postgres(pg_ledger: PgLedger, by: str) -> None:
    assert_groups(report_json(pg_ledger.config, "--by", by), expected(pg_ledger.records, by))


def test_windows_on_postgres(pg_ledger: PgLedger) -> None:
    got = report_json(pg_ledger.config, "--by", "day", "--since", "2025-03-02", "--until", "2025-03-03")
    lo, hi = BASE + 86400, BASE + 3 * 86400
    assert_groups(got, expected([r for r in pg_ledger.records if lo <= r.ts < hi], "day"))


def test_token_economy_series_and_prompts_on_postgres(pg_ledger: PgLedger) -> None:
    check_full_report(full_report(PostgresStore(pg_ledger.dsn)), pg_ledger.records)
    narrow = full_report(PostgresStore(pg_ledger.dsn), Window(BASE, BASE + 12 * 3600))
    assert narrow.bucket_s == 3600
    hours: dict[float, int] = defaultdict(int)
    for r in pg_ledger.records:
        if r.ts < BASE + 12 * 3600:
            hours[(r.ts // 3600) * 3600] += 1
    assert len(hours) > 3
    assert [(start, sums.requests) for start, sums in narrow.series] == sorted(hours.items())


def test_table_and_html_on_postgres(pg_ledger: PgLedger, tmp_path: Path) -> None:
    table = invoke("report", "--config", str(pg_ledger.config), "--by", "key", "--show-prompts")
    assert table.exit_code == 0, table.stderr
    assert "ACME-SECRET-7731" in table.stdout and "(none)" in table.stdout
    out = tmp_path / "r.html"
    html = invoke("report", "--config", str(pg_ledger.config), "--format", "html", "--out", str(out))
    assert html.exit_code == 0, html.stderr
    assert 'id="report-data"' in out.read_text()
