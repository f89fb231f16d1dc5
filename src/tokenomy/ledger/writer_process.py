"""The writer process: stores ledger records and level-2 cache entries for every gateway process.

Started by the gateway (``python -m tokenomy.ledger.writer_process``, settings pickled on stdin;
stdin then stays open as a lifeline: when it closes, because the gateway stopped or died, the
writer drains what is left and exits). Gateway processes connect to its Unix socket and send
msgpack messages (``ledger/channel.py``); the request path pays only for encoding a record and one
``send``. Here, every read is appended to the journal before it is decoded or batched
(``ledger/journal.py``), batches go to the ledger store (or its spool while the store is down:
``ledger/keeper.py``) and cache entries to the SQLite cache file, then the journal is truncated.
A ``Flush`` message is answered once everything before it is stored.

SIGINT is ignored (Ctrl-C in a terminal reaches the whole process group, and the gateway still
has records to send); SIGTERM drains and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tokenomy.config.observability import LedgerConfig
from tokenomy.ledger import channel, journal
from tokenomy.ledger.channel import Ack, Batch, CachePut, Flush, RecordMsg, Stats
from tokenomy.ledger.keeper import StoreKeeper
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores import store_for
from tokenomy.ledger.stores.base import StoreUnavailable
from tokenomy.redaction import REDACTOR, install_log_redaction
from tokenomy.server import logging_setup
from tokenomy.telemetry.access_log import AccessLog

log = logging.getLogger("tokenomy.ledger.writer")
_READS_PER_ROUND = 4096  # messages read from one connection before the others get their turn
_SPOOL_CHECK_S = 1.0
_DRAIN_S = 5.0
# After a read, let more messages gather before the next one: one wake-up per few milliseconds
# instead of one per record (each wake-up costs this process a select, a recv round and a journal
# write, and preempts the gateway when both share a core). Unread messages wait in the socket
# buffer, where a gateway crash cannot lose them.
_GATHER_S = 0.005  # on shutdown: how long to wait for gateway processes to close their connections


@dataclass(frozen=True)
class WriterSettings:
    """What the writer process needs (pickled to its stdin)."""

    socket_path: str
    ledger: LedgerConfig
    cache_path: str | None  # the SQLite level-2 cache file, when the cache writes come here
    log_level: str = "INFO"
    log_format: str = "text"  # the gateway's: this process writes to the same standard error
    access_log: bool = False  # write the gateway's access log (one line per record received)
    secrets: tuple[str, ...] = ()  # the configured secrets, masked in every line (as in the gateway)
    cache_max_bytes: int | None = None  # the level-2 cache file's size bound (cache.exact.max_store_bytes)


class CacheFile:
    """The level-2 cache table, written in one transaction per batch (schema: ``cache/stores/sqlite.py``)."""

    def __init__(self, path: str, max_bytes: int | None = None) -> None:
        from tokenomy.cache.stores.sqlite import SqliteCacheStore

        self._store = SqliteCacheStore(Path(path), max_bytes)  # evicts past the bound as it writes

    def write(self, puts: list[CachePut]) -> None:
        rows = [(p.key, p.value, p.namespace, p.model, p.task, p.expires) for p in puts]
        try:
            self._store.write_rows(rows)
        except Exception as exc:  # a cache is allowed to forget; the ledger is not
            log.error("cache: %d entries not stored: %s", len(rows), exc)


class Writer:
    """The event loop of the writer process (one thread, ``selectors``)."""

    def __init__(self, settings: WriterSettings, lifeline: int | None) -> None:
        self.settings = settings
        self.config = settings.ledger
        self.keeper = StoreKeeper(store_for(settings.ledger), settings.ledger)
        self.cache = CacheFile(settings.cache_path, settings.cache_max_bytes) if settings.cache_path else None
        self.access = AccessLog() if settings.access_log else None
        self.journal = journal.Journal(Path(f"{settings.ledger.spool}.journal"))
        self.sel = selectors.DefaultSelector()
        self.lifeline = lifeline
        self.stopping = False
        self.records: list[LedgerRecord] = []
        self.puts: list[CachePut] = []
        self.flushes: list[tuple[socket.socket, int]] = []
        self.conns: set[socket.socket] = set()
        self._oldest = 0.0
        self._journalled = False
        self._buf = bytearray(channel.MAX_MESSAGE)
        self._view = memoryview(self._buf)
        self._spool_checked = 0.0

    # -- start-up --------------------------------------------------------------------------

    def start(self) -> None:
        """Replay what dead writers left, then listen."""
        self.keeper.connect()  # opens the store and replays the spool
        for path in self.journal.open():
            self._replay_journal(path)
        address = self.settings.socket_path
        if os.path.exists(address):
            os.unlink(address)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(address)
        listener.listen(512)
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, "listener")
        if self.lifeline is not None:
            self.sel.register(self.lifeline, selectors.EVENT_READ, "lifeline")
        log.debug("writer listening on %s", address)

    def _replay_journal(self, path: Path) -> None:
        count = 0
        for raw in journal.read_messages(path):
            try:
                self._take(channel.decode_message(raw), None)
                count += 1
            except msgspec.DecodeError:
                log.warning("journal %s: unreadable message skipped", path)
        self.flushes.clear()  # nobody waits for a dead writer's flushes
        self._commit()
        if path == self.journal.path:
            self.journal.truncate()
        else:
            journal.clear(path)
        if count:
            log.info("writer: %d message(s) replayed from %s", count, path)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stopped, then drain."""
        interval = self.config.flush_interval_ms / 1000.0
        deadline = 0.0
        while True:
            pending = self.records or self.puts
            timeout = max(0.0, self._oldest + interval - time.monotonic()) if pending else interval
            pending_before = len(self.records) + len(self.puts)
            for key, _events in self.sel.select(timeout):
                if key.data == "listener":
                    self._accept(key.fileobj)  # type: ignore[arg-type]
                elif key.data == "lifeline":
                    if not os.read(self.lifeline, 4096):  # type: ignore[arg-type]
                        self.sel.unregister(self.lifeline)  # type: ignore[arg-type]
                        self.stopping = True
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]
            now = time.monotonic()
            received = len(self.records) + len(self.puts) > pending_before
            due = self.records or self.puts
            if self.flushes or len(self.records) >= self.config.batch_size or (due and now >= self._oldest + interval):
                self._commit()
            self._housekeeping(now)
            if received and not self.stopping:
                time.sleep(_GATHER_S)
            if self.stopping:
                deadline = deadline or now + _DRAIN_S
                if not self.conns or now >= deadline:
                    self._commit()
                    if self.keeper.store_up:
                        self._replay_spool()  # what gateways spooled while this writer was away
                    return

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            self.conns.add(conn)
            self.sel.register(conn, selectors.EVENT_READ, "conn")

    def _read(self, conn: socket.socket) -> None:
        messages: list[bytes] = []
        closed = False
        buf, view = self._buf, self._view
        for _ in range(_READS_PER_ROUND):
            try:
                size = conn.recv_into(buf)  # one preallocated buffer: recv(192 KiB) would mmap per call
            except BlockingIOError:
                break
            except OSError:
                closed = True
                break
            if not size:
                closed = True
                break
            messages.append(bytes(view[:size]))
        if messages:
            self.journal.append(messages)  # before anything is batched: a crash loses at most this read
            self._journalled = True
            before = len(self.records)
            for raw in messages:
                try:
                    self._take(channel.decode_message(raw), conn)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.error("writer: unreadable message (%d bytes) skipped", len(raw))
            if self.access is not None:  # records replayed from a journal or a spool were logged before
                self.access.write(self.records[before:])
        if closed:
            self.sel.unregister(conn)
            self.conns.discard(conn)
            conn.close()

    def _take(self, message: Any, conn: socket.socket | None) -> None:
        if not (self.records or self.puts):
            self._oldest = time.monotonic()
        if isinstance(message, Batch):
            for item in message.items:
                self._take(item, conn)
        elif isinstance(message, RecordMsg):
            self.records.append(message.record)
        elif isinstance(message, CachePut):
            self.puts.append(message)
        elif isinstance(message, Flush) and conn is not None:
            self.flushes.append((conn, message.seq))
        elif isinstance(message, Stats) and conn is not None:
            with contextlib.suppress(OSError):  # its read was journalled above: what came before is safe
                conn.send(self._ack(0, journalled=message.seq))

    def _commit(self) -> None:
        records, self.records = self.records, []
        puts, self.puts = self.puts, []
        for start in range(0, len(records), self.config.batch_size):
            self.keeper.write(records[start : start + self.config.batch_size])
        if puts and self.cache is not None:
            self.cache.write(puts)
        if self._journalled:
            self.journal.truncate()
            self._journalled = False
        if self.flushes:
            if self.keeper.store_up:
                self._replay_spool()  # a flush also waits for what gateways spooled themselves
            flushes, self.flushes = self.flushes, []
            for conn, seq in flushes:
                with contextlib.suppress(OSError):  # that gateway process may be gone
                    conn.send(self._ack(seq))

    def _ack(self, seq: int, journalled: int = 0) -> bytes:
        return channel.encode(Ack(seq, self.keeper.store_up, self.keeper.written, self.keeper.replayed, journalled))

    def _housekeeping(self, now: float) -> None:
        if self.keeper.retry_due():
            self.keeper.connect()
        elif self.keeper.store_up and now >= self._spool_checked + _SPOOL_CHECK_S:
            self._spool_checked = now
            self._replay_spool()

    def _replay_spool(self) -> None:
        try:
            self.keeper.replay_spool()
        except StoreUnavailable as exc:
            self.keeper.down(exc)

    def close(self) -> None:
        """Close the store and the journal (the socket file is removed)."""
        self.keeper.store.close()
        self.journal.close()
        with contextlib.suppress(OSError):
            os.unlink(self.settings.socket_path)


def main() -> None:
    """Entry point: settings from stdin, then serve until stdin closes or SIGTERM."""
    settings: WriterSettings = pickle.load(sys.stdin.buffer)
    # the gateway's log: same standard error, same format, same secrets masked
    logging_setup.configure(settings.log_level, "json" if settings.log_format == "json" else "text")
    REDACTOR.add(*settings.secrets)
    install_log_redaction()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    writer = Writer(settings, sys.stdin.fileno())

    def stop(_signum: int, _frame: Any) -> None:
        writer.stopping = True

    signal.signal(signal.SIGTERM, stop)
    writer.start()
    try:
        writer.run()
    finally:
        writer.close()


if __name__ == "__main__":
    main()
