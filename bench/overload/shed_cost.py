"""CPU cost of the gateway's own code for a shed request and for a new connection, in process.

    PYTHONPATH=src .venv/bin/python bench/overload/shed_cost.py     # N=20000 REPS=5 by default

``cpu_cost.py`` measures whole requests over real sockets (the kernel and uvloop included), which
a busy machine blurs by more than the differences worth measuring here. This builds the gateway
in this process from the overload benchmark's config (keys on, ledger on, cache off), forces every
model call to be shed (the in-progress limit at 0), and drives the server protocol directly with a
transport that only collects what is written (no kernel, no uvloop I/O):

- **shed, kept-alive**: one connection, a request whose head and body come in one read, answered
  503 from the protocol: the parse, the verdict, the answer, the dropped body, the next head's
  deadline, the refusal's counters and its sampled ledger row (the default 100 rows a second);
- **new connection, shed**: the protocol object, ``connection_made``, that request, and
  ``connection_lost``: the part of accepting a connection that is the gateway's Python code
  (uvloop's accept and transport, and ``getsockname``, come on top).

It prints the main thread's CPU µs per request (median and range of REPS runs of N): Python work
alone, in one thread, which a busy machine disturbs much less than wall-clock figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

N = int(os.environ.get("N", "20000"))
REPS = int(os.environ.get("REPS", "5"))
KEY = "sk-bench-overload"
BODY = b'{"model": "bench", "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello in one word."}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n"
    b"Content-Length: %d\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
    b"Accept-Encoding: gzip\r\n\r\n%s" % (len(BODY), KEY.encode(), BODY)
)


class Transport(asyncio.Transport):
    """Collects writes; says what uvicorn asks of a TCP transport."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written += 1

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _config(home: Path) -> Any:
    import hashlib

    from tokenomy.config import parse_config

    digest = hashlib.sha256(KEY.encode()).hexdigest()
    return parse_config(
        f'auth: {{keys: [{{name: bench, sha256: "{digest}"}}]}}\n'
        "cache: {exact: {enabled: false}}\n"
        f"ledger: {{path: '{home / 'ledger.db'}'}}\n"
        "models:\n  - name: bench\n    deployments:\n"
        "      - {provider: openai, base_url: 'http://127.0.0.1:9/v1', model: bench, api_key: '${BENCH_KEY:-sk-x}'}\n"
    )


async def measure() -> dict[str, list[float]]:
    import uvicorn
    from uvicorn.server import ServerState

    from tokenomy.server import logging_setup
    from tokenomy.server.run import create_app, http_protocol

    home = Path(tempfile.mkdtemp(prefix="tokenomy-shed-cost-"))
    os.environ.setdefault("TOKENOMY_HOME", str(home))
    config = _config(home)
    logging_setup.configure(config.server.log_level, config.server.log_format, open(home / "log", "a"))  # noqa: SIM115, ASYNC230
    app = create_app(config)
    await app.gateway.start()
    protocol_class = http_protocol(config, app)
    uv_config = uvicorn.Config(app, loop="none", http=protocol_class, access_log=False, log_config=None)
    uv_config.load()
    state = ServerState()
    admission = app.admission
    admission.overload.limit = 0  # every model call is shed
    loop = asyncio.get_running_loop()

    def kept_alive(n: int) -> None:
        proto = protocol_class(uv_config, state, {}, loop)
        proto.connection_made(Transport())
        for _ in range(n):
            proto.data_received(REQUEST)
        proto.connection_lost(None)

    def new_connections(n: int) -> None:
        for _ in range(n):
            proto = protocol_class(uv_config, state, {}, loop)
            proto.connection_made(Transport())
            proto.data_received(REQUEST)
            proto.connection_lost(None)

    results: dict[str, list[float]] = {"shed, kept-alive": [], "new connection, shed": []}
    kept_alive(2000)
    new_connections(2000)  # warm up
    await asyncio.sleep(0.2)
    for _ in range(REPS):
        for name, run in (("shed, kept-alive", kept_alive), ("new connection, shed", new_connections)):
            began = time.thread_time()
            run(N)
            spent = time.thread_time() - began
            await asyncio.sleep(0)  # the ledger rows' hand-offs run
            results[name].append(1e6 * spent / N)
            await asyncio.sleep(1.0)  # the row budget refills as it would between runs
    await app.gateway.close()
    return results


def main() -> None:
    import uvloop

    results = uvloop.run(measure())
    print(f"main-thread CPU µs per request, median (min-max) of {REPS} runs of {N}\n")
    print("| request | CPU µs per request |\n|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {statistics.median(runs):.2f} ({min(runs):.2f}-{max(runs):.2f}) |")


if __name__ == "__main__":
    main()
