"""The ledger writer: batching, spooling when the store is down or the queue is full, replay."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tokenomy.config import parse_config
from tokenomy.config.observability import LedgerConfig
from tokenomy.ledger.enrich import Enricher
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.base import StoreUnavailable
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.pipeline.context import CallContext, Endpoint, Usage
from tokenomy.telemetry import metrics

CONFIG = parse_config(
    """
models:
  - name: m
    deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: gpt-4o-mini}]
"""
)


class FlakyStore(SqliteStore):
    """A real SQLite store that can be switched off, as a database outage would."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = False

    def open(self) -> None:
        if self.down:
            raise StoreUnavailable("down for the test")
        super().open()

    def write(self, records: Sequence[LedgerRecord]) -> None:
        if self.down:
            raise StoreUnavailable("down for the test")
        super().write(records)


def ctx(i: int) -> CallContext:
    c = CallContext(request_id=f"r{i}", endpoint=Endpoint.CHAT, body={"messages": []}, model="m")
    c.logical_model = CONFIG.models[0]
    c.deployment = CONFIG.models[0].deployments[0]
    c.served_model = "m"
    c.usage = Usage(prompt_tokens=10, completion_tokens=5)
    c.finished = c.started + 0.01
    return c


def ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    found = [r[0] for r in conn.execute("SELECT request_id FROM requests ORDER BY request_id")]
    conn.close()
    return found


def writer(tmp_path: Path, store: SqliteStore, **opts: float) -> LedgerWriter:
    config = LedgerConfig(path=str(store.path), flush_interval_ms=10, retry_interval_s=0.05, **opts)  # type: ignore[arg-type]
    return LedgerWriter(store, Enricher(CONFIG), config)


def test_batches_are_written_and_flush_waits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    w = writer(tmp_path, store)
    w.start()
    for i in range(250):
        w.submit(ctx(i))
    assert w.flush(10)
    assert len(ids(store.path)) == 250
    w.close()


def test_store_outage_spools_then_backfills(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "l.db")
    w = writer(tmp_path, store)
    w.start()
    w.submit(ctx(0))
    assert w.flush(10) and w.store_up
    store.down = True
    spilled = metrics.LEDGER_SPILLED.labels("store_down")._value.get()
    for i in range(1, 50):
        w.submit(ctx(i))
    assert w.flush(10)
    assert not w.store_up and w.spool.pending()
    assert metrics.LEDGER_SPILLED.labels("store_down")._value.get() - spilled == 49
    assert ids(store.path) == ["r0"]
    store.down = False
    for _ in range(200):  # the writer retries on its own
        if w.store_up and not w.spool.pending():
            break
        w.flush(1)
        time.sleep(0.02)
    assert sorted(ids(store.path)) == sorted(f"r{i}" for i in range(50))
    w.close()


def test_full_queue_spills_instead_of_dropping(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    w = writer(tmp_path, store, max_queue=5)
    w.start()
    before = metrics.LEDGER_SPILLED.labels("queue_full")._value.get()
    for i in range(2000):  # much faster than the writer drains a queue of 5
        w.submit(ctx(i))
    assert w.flush(10)
    assert metrics.LEDGER_SPILLED.labels("queue_full")._value.get() > before
    w.close()
    # whatever overflowed went to the spool; a restart replays it
    w2 = writer(tmp_path, store)
    w2.start()
    assert w2.flush(10)
    for _ in range(100):
        if not w2.spool.pending():
            break
        time.sleep(0.02)
    assert len(ids(store.path)) == 2000
    w2.close()


def test_submit_after_close_spools(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    w = writer(tmp_path, store)
    w.start()
    w.close()
    w.submit(ctx(1))  # a request that finished during shutdown
    assert w.spool.pending()
    w2 = writer(tmp_path, SqliteStore(tmp_path / "l.db"))
    w2.start()
    w2.flush(5)
    for _ in range(100):
        if ids(store.path):
            break
        time.sleep(0.02)
    assert ids(store.path) == ["r1"]
    w2.close()


def test_torn_spool_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    w = writer(tmp_path, store)
    w.spool.append([w.enricher.record(ctx(7))])
    with w.spool.path.open("ab") as fh:
        fh.write(b'{"request_id": "half')  # a crash mid-append
    w.start()
    w.flush(5)
    for _ in range(100):
        if not w.spool.pending():
            break
        time.sleep(0.02)
    assert ids(store.path) == ["r7"]
    w.close()


@pytest.mark.parametrize("bad", ["not-a-ledger"])
def test_unusable_path_is_store_unavailable(tmp_path: Path, bad: str) -> None:
    (tmp_path / bad).write_text("x")
    store = SqliteStore(tmp_path / bad / "ledger.db")  # a file where a directory should be
    with pytest.raises(StoreUnavailable):
        store.open()
