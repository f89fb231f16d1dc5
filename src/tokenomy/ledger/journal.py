"""The writer process's journal: every message is appended here before it is batched.

Each read from the gateway sockets is appended with one ``write`` (length-prefixed messages)
before anything is decoded or batched, so a writer killed at any point loses at most the
messages of the read it was in. Once a batch is stored the journal is truncated. A journal left by
a dead writer is replayed by the next one (the stores skip records they already have, and cache
writes are upserts, so replaying twice is harmless).

Several writers may share a directory (several gateways on one machine): each holds an exclusive
``flock`` on its own file (``<base>.0``, ``<base>.1``...), and a starting writer replays every file
it can lock, since a file nobody holds belongs to a writer that is gone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("tokenomy.ledger")
_LEN = struct.Struct("<I")
_MAX_FILES = 64


class Journal:
    """One writer's journal file (held under an exclusive lock while the writer lives)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.path: Path | None = None
        self._fd = -1

    def open(self) -> list[Path]:
        """Take a free journal file; returns the orphaned files (dead writers') to replay first."""
        self.base.parent.mkdir(parents=True, exist_ok=True)
        orphans: list[Path] = []
        for n in range(_MAX_FILES):
            path = self.base.with_name(f"{self.base.name}.{n}")
            if self._fd >= 0 and not path.exists():
                continue  # only existing files can be orphans
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live writer's
                continue
            if os.fstat(fd).st_size > 0:
                orphans.append(path)
            if self._fd < 0:
                self._fd, self.path = fd, path  # ours: kept locked
            else:
                os.close(fd)  # replayed below, by path, then truncated
        if self._fd < 0:
            raise OSError(f"no free journal file beside {self.base}")
        return orphans

    def append(self, messages: list[bytes]) -> None:
        """Append messages with one write (before they are decoded or batched)."""
        data = b"".join(_LEN.pack(len(m)) + m for m in messages)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def truncate(self) -> None:
        """Everything journalled so far is stored."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        """Release the file (left in place, empty after a clean stop)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_messages(path: Path) -> Iterator[bytes]:
    """The messages in a journal file; a torn last message (a crash mid-write) is skipped."""
    data = path.read_bytes()
    pos = 0
    while pos + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if pos + size > len(data):
            log.warning("journal %s: torn last message skipped", path)
            return
        yield data[pos : pos + size]
        pos += size


def clear(path: Path) -> None:
    """Empty a replayed orphan journal (under its lock, in case a new writer just took it)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
