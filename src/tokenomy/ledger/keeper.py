"""Writing batches of records to the ledger store, or to the spool while the store is down.

Shared by the in-process writer thread (``ledger/writer.py``) and the writer process
(``ledger/writer_process.py``): the store is (re)opened with a growing back-off, the spool is
replayed as soon as it accepts writes again, and a record that cannot even be spooled is counted
as lost (the one way to lose one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tokenomy.config.observability import LedgerConfig
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.spool import Spool
from tokenomy.ledger.stores.base import LedgerStore, StoreUnavailable
from tokenomy.telemetry import metrics
from tokenomy.telemetry.log_limit import RateLimitedLog

log = logging.getLogger("tokenomy.ledger")
_MAX_RETRY_S = 30.0


class StoreKeeper:
    """The store, its spool and whether the store is up."""

    def __init__(self, store: LedgerStore, config: LedgerConfig) -> None:
        self.store = store
        self.spool = Spool(config.spool)
        self._spool_log = RateLimitedLog(log, 60.0)  # spooling goes on for as long as the store is down
        self._config = config
        self.store_up = False
        self._retry_at = 0.0
        self._retry_wait = config.retry_interval_s
        self.written = 0
        self.replayed = 0

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """Store a batch, or spool it when the store is down."""
        if not self.store_up and time.monotonic() >= self._retry_at:
            self.connect()
        if self.store_up:
            try:
                self.store.write(records)
                self.written += len(records)
                metrics.LEDGER_WRITTEN.inc(len(records))
                return
            except StoreUnavailable as exc:
                self.down(exc)
        self.append_spool(records, "store_down")

    def retry_due(self) -> bool:
        """Whether the store is down and it is time to try it again."""
        return not self.store_up and time.monotonic() >= self._retry_at

    def connect(self) -> None:
        """(Re)open the store and replay the spool; on failure schedule the next try."""
        try:
            self.store.open()
            self.replay_spool()
        except StoreUnavailable as exc:
            self.down(exc)
            return
        if not self.store_up:
            metrics.LEDGER_STORE_UP.set(1)
        self.store_up = True
        self._retry_wait = self._config.retry_interval_s

    def replay_spool(self) -> int:
        """Write spooled records to the store (raises ``StoreUnavailable`` if it fails meanwhile)."""
        if not self.spool.pending():
            return 0
        replayed, _broken = self.spool.replay(self.store.write, self._config.batch_size)
        self.replayed += replayed
        metrics.LEDGER_REPLAYED.inc(replayed)
        if replayed:
            log.info("ledger: %d spooled record(s) written to %s", replayed, self.store.description)
        return replayed

    def down(self, exc: Exception) -> None:
        """Mark the store down and schedule the next try (back-off doubles up to 30 s)."""
        if self.store_up or self._retry_at == 0.0:
            log.error("ledger store unavailable (%s); spooling to %s until it is back", exc, self.spool.path)
        self.store_up = False
        metrics.LEDGER_STORE_UP.set(0)
        self._retry_at = time.monotonic() + self._retry_wait
        self._retry_wait = min(self._retry_wait * 2, _MAX_RETRY_S)

    def append_spool(self, records: Sequence[LedgerRecord], reason: str) -> None:
        """Spool records; if even that fails, count them as lost."""
        try:
            self.spool.append(records)
            metrics.LEDGER_SPILLED.labels(reason).inc(len(records))
            self._spool_log.warning(
                reason, "ledger: %d record(s) spooled to %s (%s)", len(records), self.spool.path, reason
            )
        except OSError:
            metrics.LEDGER_LOST.inc(len(records))
            log.exception("ledger: %d record(s) could not be spooled to %s", len(records), self.spool.path)
