"""The ledger writer: a background thread that enriches, counts and stores finished requests.

The request path builds the record (prices, language, prompt hash: ~10 µs) and appends it to an
in-memory queue (no disk, no lock); only records that need their tokens counted locally (the
provider reported no usage) are built later, on the writer thread. Building inline is cheaper
than on the thread: the thread would contend for the GIL with the event loop and keep whole call
contexts alive, while a record is a small struct the garbage collector does not track. The
writer thread drains the queue in batches: updates the cost and token metrics, exports a trace
span if tracing is on, and writes the batch to the store. When the store is down, batches go to the spool file and
are replayed once it is back; when the queue is full, the request path spools directly. No
record is dropped silently: the one way to lose one (spool file unwritable) is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from tokenomy.config.observability import LedgerConfig
from tokenomy.ledger.enrich import Enricher, build_record
from tokenomy.ledger.keeper import StoreKeeper
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.pipeline.context import CallContext
from tokenomy.telemetry import metrics

log = logging.getLogger("tokenomy.ledger")

RecordHook = Callable[[LedgerRecord, "str | None"], None]
"""Called on the writer thread for each record, with the request's W3C ``traceparent`` header."""
Item = tuple["LedgerRecord | CallContext", "str | None"]
# The writer shares the GIL with the event loop: it works in slices of about half a millisecond
# and yields between them, so requests never wait behind a whole batch (p99 latency).
_WRITE_SLICE = 16


class LedgerWriter:
    """Owns the queue, the writer thread, the store and the spool."""

    def __init__(
        self, store: LedgerStore, enricher: Enricher, config: LedgerConfig, hooks: Sequence[RecordHook] = ()
    ) -> None:
        self.store = store
        self.enricher = enricher
        self.keeper = StoreKeeper(store, config)
        self.spool = self.keeper.spool
        self._config = config
        self._hooks = tuple(hooks)
        self._queue: deque[Item] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._submitted = 0
        self._handled = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the request path ------------------------------------------------------------------

    def submit(self, ctx: CallContext) -> None:
        """Record a finished request (never blocks on I/O unless the queue is full)."""
        self._submitted += 1
        usage = ctx.usage
        item: Item = (
            (self._build(ctx), ctx.headers.get("traceparent"))
            if usage is not None and (usage.prompt_tokens or usage.completion_tokens)
            else (ctx, ctx.headers.get("traceparent"))  # tokens to count: on the writer thread
        )
        if len(self._queue) >= self._config.max_queue or self._thread is None:
            self._spill([item], "queue_full" if self._thread is not None else "stopped")
            return
        self._queue.append(item)
        if len(self._queue) >= self._config.batch_size:
            self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (it opens the store and replays any spool)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tokenomy-ledger", daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything submitted so far is stored or spooled; False on timeout."""
        target = self._submitted
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._handled >= target, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, stop the thread and close the store (used on graceful shutdown)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join(timeout)
        if self._queue:  # the thread did not finish in time: keep the rest in the spool
            self._spill(list(self._queue), "shutdown")
            self._queue.clear()
        self.store.close()

    @property
    def store_up(self) -> bool:
        """Whether the last write to the store succeeded."""
        return self.keeper.store_up

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        self.keeper.connect()
        interval = self._config.flush_interval_ms / 1000.0
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if not self._queue:
                if self._stopping:
                    return
                if self.keeper.retry_due():
                    self.keeper.connect()  # backfill the spool as soon as the store is back
                continue
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._config.batch_size))]
                self._handle(batch)

    def _handle(self, batch: list[Item]) -> None:
        metrics.LEDGER_QUEUE.set(len(self._queue))
        oldest = time.time()
        for start in range(0, len(batch), _WRITE_SLICE):  # hooks and insert per slice, yielding between
            records = self._finish_items(batch[start : start + _WRITE_SLICE])
            self.keeper.write(records)
            oldest = min(oldest, *(r.ts for r in records))
            time.sleep(0)
        metrics.LEDGER_LAG.set(max(0.0, time.time() - oldest))
        with self._idle:
            self._handled += len(batch)
            self._idle.notify_all()

    def _build(self, ctx: CallContext) -> LedgerRecord:
        return build_record(self.enricher, ctx)

    def _finish_items(self, items: list[Item]) -> list[LedgerRecord]:
        """Build what is still a call context, then run the hooks (metrics, tracing) per record."""
        records = [item if isinstance(item, LedgerRecord) else self._build(item) for item, _tp in items]
        for hook in self._hooks:
            try:
                for record, (_item, traceparent) in zip(records, items, strict=True):
                    hook(record, traceparent)
                flush = getattr(hook, "flush", None)
                if flush is not None:
                    flush()
            except Exception:
                log.exception("ledger hook %r failed", hook)
        return records

    def _spill(self, items: list[Item], reason: str) -> None:
        """Spool on the caller's thread (queue full, or the writer is stopped)."""
        self._append_spool(self._finish_items(items), reason)
        with self._idle:
            self._handled += len(items)
            self._idle.notify_all()

    def _append_spool(self, records: list[LedgerRecord], reason: str) -> None:
        self.keeper.append_spool(records, reason)


class NoLedger:
    """``ledger.enabled: false``: finished requests are only counted in the request metrics."""

    def submit(self, ctx: CallContext) -> None:
        """Forget the request."""

    def start(self) -> None:
        """Nothing to start."""

    def flush(self, timeout: float = 30.0) -> bool:
        """Nothing is ever pending."""
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Nothing to close."""
