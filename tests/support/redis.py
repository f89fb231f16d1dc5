"""A real ``redis-server`` on a free loopback port, without persistence, for the cache tests.

``stop()`` and ``start()`` take it down and bring it back on the same port (empty: nothing is
saved), for outage tests.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.ports import free_port


def redis_bin() -> str:
    """The ``redis-server`` executable (``$REDIS_SERVER`` wins)."""
    found = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise RuntimeError("redis-server is not installed: run scripts/install-test-servers.sh")
    return found


class RedisServer:
    """One ``redis-server`` process; ``url`` is its database 0."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="tokenomy-redis-"))
        self.log = self.base / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.destroy)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (same port) and wait until it answers ``PING``."""
        if self.running:
            return
        args = [
            redis_bin(),
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.base),
            "--save", "", "--appendonly", "no", "--protected-mode", "no", "--logfile", str(self.log),
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if not self.running or time.monotonic() > deadline:
                self.stop()
                text = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"redis-server did not start:\n{text[-2000:]}")
            time.sleep(0.01)

    def ping(self) -> bool:
        """Whether the server answers now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Shut down (connections are cut; nothing is kept)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server for the session (tests that stop it should start their own instead)."""
    server = RedisServer()
    server.start()
    yield server
    server.destroy()
