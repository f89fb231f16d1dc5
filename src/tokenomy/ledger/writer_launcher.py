"""Starting the writer process, and starting it again when it dies.

The process that owns the writer (the gateway itself, or the supervisor of ``serve --workers``)
keeps a pipe to the writer's stdin open as a lifeline: closing it (or dying) tells the writer to
drain and exit, so a writer never outlives its gateway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tokenomy.config.models import GatewayConfig
from tokenomy.ledger.writer_process import WriterSettings
from tokenomy.redaction import config_secrets
from tokenomy.server.logging_setup import stderr_format
from tokenomy.telemetry import metrics

log = logging.getLogger("tokenomy.ledger")
SOCKET_ENV = "TOKENOMY_WRITER_SOCKET"
"""Set for worker processes of ``serve --workers``: the socket of the writer their supervisor owns."""
_CHECK_S = 0.2


ACCESS_ENV = "TOKENOMY_WRITER_ACCESS_LOG"
"""Set to 1 for worker processes of ``serve --workers`` whose supervisor's writer writes the access log."""


def writer_settings(config: GatewayConfig, socket_path: str, access_log: bool = False) -> WriterSettings:
    """The writer's settings for a gateway config (paths and secrets resolved here, in the gateway's
    environment); ``access_log``: the writer writes the access log (see :func:`writer_writes_access_log`)."""
    exact = config.cache.exact
    cache_path = str(exact.sqlite_path) if exact.enabled and exact.store == "sqlite" else None
    paths = {"path": str(config.ledger.sqlite_path), "spool_path": str(config.ledger.spool)}
    ledger = config.ledger.model_copy(update=paths)
    server = config.server
    secrets = tuple(config_secrets(config))
    return WriterSettings(
        socket_path, ledger, cache_path, server.log_level, server.log_format, access_log, secrets, exact.max_store_bytes
    )


def writer_writes_access_log(config: GatewayConfig) -> bool:
    """Whether a writer process started now for ``config`` should write the access log.

    Yes when the access log is on and this process's log is ``tokenomy serve``'s: lines in one
    format on standard error, which the writer inherits and writes to in the same format. A
    gateway embedded elsewhere (its log handled by another program, or captured by a test) keeps
    writing the access log itself, to its own handlers.
    """
    return config.server.access_log and stderr_format() == config.server.log_format


def new_socket_path() -> str:
    """A fresh socket path in a private temporary directory (short: Unix socket paths are limited)."""
    return str(Path(tempfile.mkdtemp(prefix="tokenomy-w-")) / "writer.sock")


class WriterLauncher:
    """Owns the writer process: starts it, watches it from a thread, restarts it when it dies."""

    def __init__(self, settings: WriterSettings) -> None:
        self.settings = settings
        self.socket_path = settings.socket_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        """Start the writer and the thread that restarts it."""
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="tokenomy-writer-watch", daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int | None:
        """The writer's process id (tests kill it)."""
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenomy.ledger.writer_process"], stdin=subprocess.PIPE, close_fds=True
        )
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(self.settings))
        proc.stdin.flush()  # stdin stays open: the lifeline
        self._proc = proc

    def _watch(self) -> None:
        while not self._stop.wait(_CHECK_S):
            proc = self._proc
            if proc is not None and proc.poll() is not None and not self._stop.is_set():
                log.error("the ledger writer process exited (code %s); starting it again", proc.returncode)
                self.restarts += 1
                metrics.LEDGER_WRITER_RESTARTS.inc()
                if proc.stdin is not None:
                    proc.stdin.close()
                self._spawn()

    def stop(self, timeout: float = 30.0) -> None:
        """Close the lifeline and wait for the writer to drain and exit."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the ledger writer did not stop in %.0f s; killed (its journal is replayed next start)", timeout)
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.socket_path))
