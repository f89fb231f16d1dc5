"""The request path's side of the writer process: build the record, encode it, send it.

``submit`` builds the ledger record (prices, language, prompt hash), feeds the metric hooks (sums
in a dict, added to the counters every quarter second), and sends the msgpack-encoded record to
the writer process with one non-blocking ``send`` on a Unix socket, before the response is
written: a gateway process killed after answering has already handed its record over. When the
writer cannot take it (not running, restarting, its socket buffer full) the record is appended to
the spool file instead, which the writer replays. A record sent is kept here until the writer
confirms it has read and journalled it (its answer to the quarter-second :class:`Stats`); if the
writer dies first (``kill -9``: the kernel discards what it had not read), the records it did not
confirm are spooled, so the replacement stores them (a record also journalled is stored once: the
stores ignore a request id they already hold). Records whose tokens must be counted locally (the
provider reported no usage) are built on a helper thread, as counting a long prompt takes too long
for the event loop.

The gateway process that owns the writer starts it (``ledger/writer_launcher.py``); worker
processes of ``serve --workers`` connect to their supervisor's writer instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from socket import socket
from typing import TypeVar

import msgspec

from tokenomy.config.observability import LedgerConfig
from tokenomy.ledger import channel
from tokenomy.ledger.channel import Ack, Batch, CachePut, Flush, RecordMsg, Stats
from tokenomy.ledger.enrich import Enricher, build_record
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.spool import Spool
from tokenomy.ledger.writer import RecordHook
from tokenomy.ledger.writer_launcher import WriterLauncher
from tokenomy.pipeline.context import CallContext
from tokenomy.telemetry import metrics

log = logging.getLogger("tokenomy.ledger")
T = TypeVar("T")
_RECONNECT_S = 0.05
_HOOK_FLUSH_S = 0.25
_MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # serve --workers: the writer exports its own


class ProcessLedger:
    """A gateway process's connection to the writer process."""

    def __init__(
        self,
        enricher: Enricher,
        config: LedgerConfig,
        socket_path: str,
        hooks: Sequence[RecordHook] = (),
        launcher: WriterLauncher | None = None,
        spill_hooks: Sequence[RecordHook] = (),
    ) -> None:
        self.enricher = enricher
        self.spool = Spool(config.spool)
        self.socket_path = socket_path
        self.launcher = launcher  # set when this process owns the writer
        self._hooks = tuple(hooks)
        self._spill_hooks = tuple(spill_hooks)  # what the writer does for records it receives (the access log)
        self._sock: socket | None = None
        self._next_connect = 0.0
        self._ticker: asyncio.TimerHandle | None = None
        self._puts: list[CachePut] = []
        self._closing = False
        self._slow = ThreadPoolExecutor(1, thread_name_prefix="tokenomy-ledger-count")
        self._flush_lock = threading.Lock()
        self._acked_cond = threading.Condition()
        self._acked = 0
        self._reading: socket | None = None
        self._seen = (0, 0)
        self._seq = itertools.count(1)
        # records sent since the last Stats, and those sent before each Stats not yet confirmed
        self._held: list[LedgerRecord] = []
        self._unconfirmed: dict[int, list[LedgerRecord]] = {}
        self._stats_seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.store_up = False
        self.sent = 0
        self.spilled = 0

    # -- the request path ------------------------------------------------------------------

    def submit(self, ctx: CallContext) -> None:
        """Record a finished request (never blocks: at worst one file append)."""
        usage = ctx.usage
        if (usage is None or not (usage.prompt_tokens or usage.completion_tokens)) and _counts_tokens(ctx):
            try:
                self._slow.submit(self._submit_slow, ctx)  # tokens to count: off the event loop
                return
            except RuntimeError:  # shutting down: count here
                pass
        self._deliver(self._build(ctx), ctx.headers.get("traceparent"))

    def put_cache(self, key: str, value: bytes, namespace: str, model: str, task: str, expires: float) -> bool:
        """Hand a level-2 cache entry to the writer; False when it cannot take it now.

        The entry waits for the request's record (stored a moment later, in the same turn of the
        event loop) and goes with it in one message: one ``send`` per request, not two.
        """
        if (self._sock or self._reconnect()) is None or len(value) > channel.MAX_MESSAGE - 1024:
            return False
        if not self._puts and self._loop is not None:
            self._loop.call_soon(self._send_puts)  # in case no record follows (streams end later)
        self._puts.append(CachePut(key, value, namespace, model, task, expires))
        return True

    def _send_puts(self) -> None:
        puts, self._puts = self._puts, []
        for put in puts:  # rare: no record came in the same turn
            self._send(channel.encode(put))

    def _send(self, data: bytes) -> bool:
        sock = self._sock or self._reconnect()
        if sock is None:
            return False
        try:
            sock.send(data)
            return True
        except BlockingIOError:
            return False
        except OSError:
            self._writer_lost()
            return False

    def _build(self, ctx: CallContext) -> LedgerRecord:
        return build_record(self.enricher, ctx)

    def _deliver(self, record: LedgerRecord, traceparent: str | None) -> None:
        for hook in self._hooks:
            try:
                hook(record, traceparent)
            except Exception:
                log.exception("ledger hook %r failed", hook)
        sock = self._sock or self._reconnect()
        reason = "writer_down"
        if sock is not None:
            single = RecordMsg(record)
            message: RecordMsg | Batch = single
            if self._puts:  # cache entries of this turn travel with the record
                message = Batch([*self._puts, single])
                self._puts = []
            data = channel.encode(message)
            if len(data) > channel.MAX_MESSAGE and isinstance(message, Batch):
                self._send_puts_of(message)
                data = channel.encode(single)
            try:
                if len(data) <= channel.MAX_MESSAGE:
                    sock.send(data)
                    self.sent += 1
                    if self._reading is sock:  # until the writer confirms it journalled it (answers read on the loop)
                        self._held.append(record)
                    return
                reason = "too_large"
            except BlockingIOError:
                reason = "queue_full"
            except OSError:
                self._writer_lost()
        self._spill(record, reason)

    def _send_puts_of(self, batch: Batch) -> None:
        for item in batch.items:
            if isinstance(item, CachePut):
                self._send(channel.encode(item))

    def _submit_slow(self, ctx: CallContext) -> None:
        record = self._build(ctx)
        if self._loop is not None and not self._loop.is_closed():
            try:  # hooks and the socket belong to the event loop's thread
                self._loop.call_soon_threadsafe(self._deliver, record, ctx.headers.get("traceparent"))
                return
            except RuntimeError:
                pass
        self._spill(record, "stopped")

    def _spill(self, record: LedgerRecord, reason: str) -> None:
        self.spilled += 1
        for hook in self._spill_hooks:  # the writer never sees this record live: done here instead
            try:
                hook(record, None)
            except Exception:
                log.exception("ledger hook %r failed", hook)
        try:
            self.spool.append([record])
            metrics.LEDGER_SPILLED.labels(reason).inc()
        except OSError:
            metrics.LEDGER_LOST.inc()
            log.exception("ledger: record %s could not be spooled to %s", record.request_id, self.spool.path)

    def _reconnect(self) -> socket | None:
        now = time.monotonic()
        if now < self._next_connect:
            return None
        self._next_connect = now + _RECONNECT_S
        try:
            sock = self._sock = channel.connect(self.socket_path)
        except OSError:
            return None
        if self._loop is not None and _on_thread_of(self._loop):
            self._loop.add_reader(sock.fileno(), self._on_acks, sock)  # answers are read on the loop
            self._reading = sock
        return sock

    def _writer_lost(self) -> None:
        """The writer went away: spool the records it had not confirmed, then disconnect.

        It may have read some of them (a writer that exited cleanly read them all): those are
        stored once all the same. Their access-log lines are not written again here."""
        lost = [record for batch in self._unconfirmed.values() for record in batch] + self._held
        self._unconfirmed, self._held = {}, []
        if lost:
            try:
                self.spool.append(lost)
                metrics.LEDGER_SPILLED.labels("writer_lost").inc(len(lost))
            except OSError:
                metrics.LEDGER_LOST.inc(len(lost))
                log.exception("ledger: %d record(s) could not be spooled to %s", len(lost), self.spool.path)
        self._disconnect()

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._reading is sock and self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            self._reading = None
            sock.close()
        with self._acked_cond:
            self._acked_cond.notify_all()  # a flush waiting on this connection tries again

    def _on_acks(self, sock: socket) -> None:
        """The writer's answers (flushes and stats), read on the event loop."""
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                if sock is self._sock:
                    self._writer_lost()
                return
            try:
                ack = channel.decode_ack(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            self._apply(ack)
            if ack.journalled and sock is self._sock:
                for seq in [seq for seq in self._unconfirmed if seq <= ack.journalled]:
                    del self._unconfirmed[seq]
            if ack.seq:
                with self._acked_cond:
                    self._acked = max(self._acked, ack.seq)
                    self._acked_cond.notify_all()

    def _apply(self, ack: Ack) -> None:
        """The writer's store state into this process's metrics (multiprocess mode: the writer's own)."""
        self.store_up = ack.store_up
        if _MULTIPROCESS:
            return
        metrics.LEDGER_STORE_UP.set(1 if ack.store_up else 0)
        seen_written, seen_replayed = self._seen
        if ack.written < seen_written or ack.replayed < seen_replayed:  # a new writer counts from 0
            seen_written = seen_replayed = 0
        metrics.LEDGER_WRITTEN.inc(ack.written - seen_written)
        metrics.LEDGER_REPLAYED.inc(ack.replayed - seen_replayed)
        self._seen = (ack.written, ack.replayed)

    def _tick(self) -> None:
        """Every quarter second on the event loop: add the metric sums to the counters, and ask the
        writer to confirm what it has journalled."""
        if self._closing or self._loop is None or self._loop.is_closed():
            return
        self._flush_hooks()
        if self._reading is not None:
            seq = next(self._stats_seq)
            held = self._held
            if self._send(channel.encode(Stats(seq))) and held:
                self._unconfirmed[seq] = held  # confirmed by the answer to this Stats
                self._held = []
        self._ticker = self._loop.call_later(_HOOK_FLUSH_S, self._tick)

    def _flush_hooks(self) -> None:
        for hook in self._hooks:
            flush = getattr(hook, "flush", None)
            if flush is not None:
                try:
                    flush()
                except Exception:
                    log.exception("ledger hook %r failed to flush", hook)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer (when this process owns it); records spool until it listens
        (``connected`` waits for that)."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if self.launcher is not None:
            self.launcher.start()
        self._reconnect()
        if self._loop is not None:  # metric sums, and the writer's confirmations of what it journalled
            self._ticker = self._loop.call_later(_HOOK_FLUSH_S, self._tick)

    async def connected(self, within_s: float = 10.0) -> bool:
        """Wait until the writer takes records (it replays journals and the spool first).

        The gateway waits for this before taking traffic: a writer starting up competes for the
        CPU with the first requests, and records would take the slower spool path meanwhile.
        """
        end = time.monotonic() + within_s
        while self._sock is None:
            if time.monotonic() >= end:
                log.error("the ledger writer is not answering yet; records spool until it does")
                return False
            await asyncio.sleep(0.01)
            self._reconnect_now()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything submitted so far is stored (or spooled); False on timeout.

        Call from a thread other than the event loop's (tests use ``asyncio.to_thread``).
        """
        end = time.monotonic() + timeout
        self._slow.submit(lambda: None).result(timeout)  # records built on the helper thread
        self._on_loop(self._flush_hooks)  # also lets records handed to the loop get sent
        with self._flush_lock:
            while time.monotonic() < end:
                sock = self._sock or self._on_loop(self._reconnect_now)
                if sock is None:
                    time.sleep(0.02)
                    continue
                seq = next(self._seq)
                try:
                    message = channel.encode(Flush(seq))
                    self._on_loop(lambda s=sock, m=message: s.send(m))  # type: ignore[misc]
                    if self._reading is sock:  # the loop reads the answer
                        if self._wait_acked(sock, seq, end):
                            return True
                    elif self._await_ack(sock, seq, end):
                        return True
                except OSError:
                    self._on_loop(self._writer_lost)
            return False

    def _wait_acked(self, sock: socket, seq: int, end: float) -> bool:
        with self._acked_cond:
            while self._acked < seq:
                left = end - time.monotonic()
                if left <= 0 or self._sock is not sock:
                    return False
                self._acked_cond.wait(min(left, 0.1))
            return True

    def _reconnect_now(self) -> socket | None:
        self._next_connect = 0.0
        return self._reconnect()

    def _await_ack(self, sock: socket, seq: int, end: float) -> bool:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return False
            data = sock.recv(4096)
            if not data:
                raise OSError("the writer closed the connection")
            ack = channel.decode_ack(data)
            self._apply(ack)
            if ack.seq >= seq:
                return True

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the event loop's thread (where the socket is used) and return its result."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running() or _on_thread_of(loop):
            return fn()
        return asyncio.run_coroutine_threadsafe(_call(fn), loop).result(30)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is pending, stop the writer if this process owns it (it drains first)."""
        self._slow.shutdown(wait=True)
        self._closing = True  # the ticker stops at its next turn
        self._on_loop(self._flush_hooks)
        self._on_loop(self._disconnect)
        if self.launcher is not None:
            self.launcher.stop(timeout)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id, when this process owns it."""
        return self.launcher.pid if self.launcher is not None else None


async def _call(fn: Callable[[], T]) -> T:
    return fn()


def _on_thread_of(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _counts_tokens(ctx: CallContext) -> bool:
    """Whether building ``ctx``'s record counts tokens locally (the enricher's test: a deployment was
    called and answered or streamed); a request refused before that (shed, 401, bad input) has
    nothing to count and is recorded inline, without a hop to the counting thread."""
    return ctx.deployment is not None and bool(ctx.streamed_text or ctx.status < 400)
