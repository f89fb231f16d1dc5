"""The HTML report's figures: money under a cent keeps its digits; the group table stays narrow enough to
read; the charts' data covers the data's own span (the charts themselves are checked in a browser in
``test_html_browser.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.reports.helpers import BASE, records, sqlite_config, write_ledger

from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.reports.model import ReportQuery, Sections
from tokenomy.reports.query import run_query
from tokenomy.reports.render_html import chart_data, render
from tokenomy.reports.render_table import short_money


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0033, "$0.0033"), (0.012, "$0.01"), (0.000012, "$1.2e-05"), (0.0, "$0"), (1234.5, "$1,234.50")],
)
def test_short_money_keeps_sub_cent_digits(value: float, text: str) -> None:
    assert short_money(value) == text


def test_fifteen_minutes_of_data_span_their_own_hour(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    write_ledger(path, records(n=30, start=BASE + 600, span_s=15 * 60))
    sqlite_config(tmp_path, path)
    report = run_query(SqliteStore(path), ReportQuery(sections=Sections(economy=True, series=True)))
    assert report.bucket_s == 3600 and len(report.series) == 1
    data = chart_data(report)
    assert data["bucket_s"] == 3600 and [p["t"] for p in data["series"]] == [BASE]  # one bucket: 00:00-01:00
    html = render(report)
    first_header = re.search(r"<thead><tr>(.*?)</tr></thead>", html)
    assert first_header is not None and first_header.group(1).count("<th>") <= 12
    assert 'class="wrap"' in html
