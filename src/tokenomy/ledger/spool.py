"""The spool: an append-only local file for records the store cannot take right now.

Records land here when the in-memory queue is full or the store is down, and are replayed
into the store when it accepts writes again. Replays are idempotent (the stores skip known
request ids), so a crash mid-replay at worst replays some records twice, never loses them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import msgspec

from tokenomy.ledger.record import LedgerRecord, decode_line, encode_line

log = logging.getLogger("tokenomy.ledger")


class Spool:
    """Append records to a file; replay them in batches through a write function."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._replaying = path.with_name(path.name + ".replaying")
        self._lockfile = path.with_name(path.name + ".lock")
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across threads and processes (several gateways may share a spool path)."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lockfile.open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, records: Iterable[LedgerRecord]) -> int:
        """Append records (thread-safe); returns how many were written."""
        data = b"".join(encode_line(record) for record in records)
        if not data:
            return 0
        with self._locked(), self.path.open("ab") as fh:
            fh.write(data)
        return data.count(b"\n")

    def pending(self) -> bool:
        """Whether any spooled records wait for replay."""
        return self._replaying.exists() or (self.path.exists() and self.path.stat().st_size > 0)

    def replay(self, write: Callable[[Sequence[LedgerRecord]], None], batch_size: int) -> tuple[int, int]:
        """Write spooled records through ``write``; returns (replayed, unreadable lines).

        If ``write`` raises, the records not yet written stay spooled and the exception propagates.
        """
        with self._locked():
            if not self._replaying.exists():
                if not self.path.exists():
                    return 0, 0
                self.path.replace(self._replaying)  # new spills go to a fresh file meanwhile
        replayed = broken = 0
        batch: list[LedgerRecord] = []
        with self._replaying.open("rb") as fh:
            for line in fh:
                try:
                    batch.append(decode_line(line))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    broken += 1  # a torn last line from a crash mid-append
                    continue
                if len(batch) >= batch_size:
                    write(batch)
                    replayed += len(batch)
                    batch = []
        if batch:
            write(batch)
            replayed += len(batch)
        self._replaying.unlink(missing_ok=True)  # another gateway sharing the spool may have finished it
        if broken:
            log.error("ledger spool: %d unreadable line(s) in %s skipped", broken, self._replaying)
        return replayed, broken
