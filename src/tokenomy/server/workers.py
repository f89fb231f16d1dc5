"""``tokenomy serve --workers N``: N gateway processes on one port, one writer process, shared state.

The supervisor (the process ``serve`` starts) owns the ledger writer process and N worker
processes. Each worker binds the same address with ``SO_REUSEPORT`` (the kernel spreads new
connections across them) and runs the whole gateway under uvicorn; its ledger records and
level-2 cache writes go to the supervisor's writer (``TOKENOMY_WRITER_SOCKET``). Metrics use the
Prometheus client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): every process, the writer
included, writes its values to files there, and ``/metrics`` on any worker sums them, so it shows
the whole gateway. A worker that dies is replaced; SIGTERM or SIGINT stops the workers (each
finishes its requests), then the writer (which stores what it has).

State that must be global: budgets need a shared store (``budgets.store: redis``) with more than
one worker; keys created at run time are in the shared SQLite key store; the exact cache's level 2
is one SQLite file (level 1 stays per worker). The supervisor also creates a small file the
workers map into memory (``TOKENOMY_SHARED_STATE``, ``tokenomy.state.shared_memory``): deployment
and per-key RPM/TPM buckets (unless Redis holds them) taken atomically across the workers, and
counters through which a cache invalidation or a key change on one worker reaches every worker's
copy before its next use. Configurations that would silently be per-worker are refused at start
(see :func:`shared_state_problems`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tokenomy.config.models import GatewayConfig

log = logging.getLogger("tokenomy.workers")
_CHECK_S = 0.2
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_RESTART_BACKOFF_S = 1.0


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(config: GatewayConfig) -> int:
    """The number of usable cores; 1 when embedded local models are served (each worker would load
    its own copy of every model)."""
    if any(dep.provider == "local" for model in config.models for dep in model.deployments):
        return 1
    return usable_cores()


def shared_state_problems(config: GatewayConfig) -> list[str]:
    """What this config would keep per worker although it must be global (empty: fine)."""
    problems = []
    # per-key rpm/tpm are shared through the workers' memory; USD budgets are not (the admin API
    # then refuses to create keys with one)
    keys_budgeted = any(key.budget is not None for key in config.auth.keys)
    if config.budgets.store == "memory" and (config.budgets.rules or keys_budgeted):
        problems.append(
            "budgets are counted per process with budgets.store: memory; "
            "with several workers use budgets.store: redis (or --workers 1)"
        )
    elif config.budgets.store == "memory" and config.auth.admin_key is not None:
        problems += _stored_budgets_problems(config)
    semantic = config.cache.semantic
    if semantic.enabled or any(rule.semantic for rule in config.cache.rules):
        if semantic.store == "usearch":
            problems.append(
                "the semantic cache's index belongs to one process; use --workers 1 with it "
                "(or cache.semantic.store: pgvector)"
            )
        elif semantic.audit_share > 0:  # the error budget and the audit file are per process
            problems.append("semantic hit audits (audit_share > 0) are counted per process; use --workers 1 with them")
    if config.ledger.enabled and config.ledger.writer == "thread":
        problems.append("ledger.writer: thread writes from every worker; use the default writer: process")
    return problems


def _stored_budgets_problems(config: GatewayConfig) -> list[str]:
    """Keys created earlier through the admin API that carry a budget (which memory budgets would count per worker)."""
    if config.auth.key_store.store == "redis":
        return ["keys kept in Redis may carry budgets, counted per process with budgets.store: memory; "
                "with several workers use budgets.store: redis (or --workers 1)"]  # fmt: skip
    from tokenomy.keys.store_sqlite import budgeted_key_names

    names = budgeted_key_names(config.auth.key_store.sqlite_path)
    if not names:
        return []
    return [
        f"stored key(s) {', '.join(names[:5])} carry a budget, counted per process with budgets.store: memory; "
        "with several workers use budgets.store: redis (or --workers 1, or revoke them)"
    ]


def run_workers(config: GatewayConfig, host: str, port: int, workers: int) -> None:
    """Supervise ``workers`` gateway processes until SIGTERM/SIGINT."""
    problems = shared_state_problems(config)
    if problems:
        raise SystemExit("cannot run several workers with this config:\n  - " + "\n  - ".join(problems))
    Supervisor(config, host, port, workers).run()


class Supervisor:
    """Starts the writer and the workers, replaces dead workers, stops everything in order."""

    def __init__(self, config: GatewayConfig, host: str, port: int, workers: int) -> None:
        self.config, self.host, self.port, self.count = config, host, port, workers
        self.workers: dict[int, subprocess.Popen[bytes]] = {}  # slot -> process
        self.stopping = False
        self.replaced = 0
        self.metrics_dir = tempfile.mkdtemp(prefix="tokenomy-metrics-")
        self.state_dir = tempfile.mkdtemp(prefix="tokenomy-shared-")
        self.launcher: Any = None

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT."""
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir  # inherited by the writer and workers
        from tokenomy.state.shared_memory import ENV, SharedState

        state_path = Path(self.state_dir) / "state"
        SharedState.create(state_path).close()  # each worker maps it (a replacement sees the same state)
        os.environ[ENV] = str(state_path)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._start_writer()
        try:
            for slot in range(self.count):
                self.workers[slot] = self._spawn()
            log.info("Tokenomy gateway on http://%s:%d with %d workers", self.host, self.port, self.count)
            while not self.stopping:
                time.sleep(_CHECK_S)
                self._replace_dead()
        finally:
            self._shutdown()

    def _start_writer(self) -> None:
        if not self.config.ledger.enabled:
            return
        from tokenomy.ledger import writer_launcher as wl

        path = wl.new_socket_path()
        access = wl.writer_writes_access_log(self.config)  # one writer writes every worker's access lines
        self.launcher = wl.WriterLauncher(wl.writer_settings(self.config, path, access_log=access))
        self.launcher.start()
        os.environ[wl.SOCKET_ENV] = path
        os.environ[wl.ACCESS_ENV] = "1" if access else "0"

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "tokenomy.server.workers"], stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((self.config, self.host, self.port)))
        proc.stdin.close()
        return proc

    def _replace_dead(self) -> None:
        for slot, proc in list(self.workers.items()):
            if proc.poll() is not None and not self.stopping:
                log.error("worker %d (pid %d) exited with code %s; starting a new one", slot, proc.pid, proc.returncode)
                _mark_dead(proc.pid)
                self.replaced += 1
                if proc.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM):
                    time.sleep(_RESTART_BACKOFF_S)  # a crash loop must not spin
                self.workers[slot] = self._spawn()

    def _stop(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def _shutdown(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # uvicorn finishes in-flight requests
        deadline = time.monotonic() + 60
        for proc in self.workers.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.launcher is not None:
            self.launcher.stop()  # after the workers: it stores their last records, then exits
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _mark_dead(pid: int) -> None:
    """Tell the multiprocess metrics that a worker is gone (its counters stay in the sums)."""
    with contextlib.suppress(Exception):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def _stop_with_parent() -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (even by SIGKILL), so no worker outlives it
    holding the port; the worker then stops as on any SIGTERM (its records spool if the writer is gone)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the supervisor died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)


def worker_main() -> None:
    """One worker: the gateway under uvicorn on a ``SO_REUSEPORT`` socket (settings pickled on stdin)."""
    _stop_with_parent()
    config, host, port = pickle.load(sys.stdin.buffer)
    from tokenomy.server.run import serve_on

    serve_on(config, [_reuse_port_socket(host, port)])


if __name__ == "__main__":
    worker_main()
