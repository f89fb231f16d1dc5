"""CPU cost of a request the gateway serves and of one it sheds, on kept-alive and on new connections.

    python bench/overload/cpu_cost.py            # SECONDS=4 CONNS=8 by default

Wall-clock goodput depends on what else runs on the machine; CPU time per request does much less.
This starts the fixed-answer upstream and ``tokenomy serve`` (keys on, ledger on, cache off) as
``run.py`` does, drives a closed loop of CONNS connections (kept alive, then a new one for every
request) for SECONDS with the Go load generator, and divides the CPU time the gateway process used
(user + system, all its threads, from ``/proc/<pid>/stat``; its ledger writer process is shown
apart) by the requests answered:

- **served**: every request answered 200 by way of the upstream;
- **shed at the edge**: ``server.max_in_flight: 4`` and four requests held in progress at a
  deliberately slow upstream answer, so every further model call finds the in-progress limit
  reached and is answered 503 from the protocol; the same again as open loops at each rate of
  ``OPEN`` (requests leave on schedule, spread in time, on as many kept-alive connections as the
  generator needs: what a shed costs under overload, where the requests do not arrive in batches).

On one core, goodput g at offered rate r satisfies g * served + (r - g) * shed <= 1 s: the last
line but one is the share of saturation the gateway keeps at 2x saturation on kept-alive
connections if its core does nothing else. The last line is the CPU time of the check that sheds,
while overloaded, requests that waited unread in the kernel (``GuardedHttpToolsProtocol.waited``:
one ``getsockopt`` on a real uvloop connection; 5 x 100,000 calls, in this process).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import probes
import run as bench  # the overload benchmark's upstream, gateway and load generator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

SECONDS = float(os.environ.get("SECONDS", "4"))
CONNS = int(os.environ.get("CONNS", "8"))
OPEN = [float(r) for r in os.environ.get("OPEN", "2000 6000").split()]  # open-loop rates for the shed rows


def _measure(
    gateway_pid: int, url: str, auth: list[str], new: bool, rate: float = 0
) -> tuple[int, dict[str, int], float, float]:
    """Closed loop of CONNS connections, or (``rate``) an open loop at that many requests a second."""
    before, before_kids = probes.cpu_s(gateway_pid), probes.descendants_cpu_s(gateway_pid)
    if rate:
        r = bench._load_run(url, rate, SECONDS, auth, in_flight=4096, warmup=0)
    else:
        r = bench._load_run(url, 200_000, SECONDS, auth, in_flight=CONNS, warmup=0, new_connections=new)
    time.sleep(0.5)  # let the ledger writer catch up
    sent = int(r["sent"])  # type: ignore[call-overload]
    codes = dict(r["codes"])  # type: ignore[call-overload]
    return sent, codes, probes.cpu_s(gateway_pid) - before, probes.descendants_cpu_s(gateway_pid) - before_kids


def _hold(url: str, count: int) -> list[socket.socket]:
    """``count`` model calls that stay in progress (the upstream answers them after a minute)."""
    host, port = url.removeprefix("http://").split(":")
    body = bench.BODY.replace(b"Say hello in one word.", bench.SLOW_MARK)
    held = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s" % (bench.KEY.encode(), len(body), body)
        )
        held.append(s)
    time.sleep(1.0)
    return held


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="tokenomy-cpu-cost-"))
    upstream_port = bench.free_port()
    upstream = bench._python(str(Path(__file__).parent / "run.py"), "upstream", str(upstream_port))
    procs = [upstream]
    auth = [f"authorization: Bearer {bench.KEY}"]
    rows = []
    try:
        time.sleep(0.5)
        for label, server in (("served (200)", ""), ("shed at the edge (503)", "max_in_flight: 4")):
            os.environ["SERVER"] = server
            gateway, url = bench._gateway(upstream_port, keys=True, home=home)
            procs.append(gateway)
            bench._settle(url, auth)
            held = _hold(url, 4) if server else []
            for new in (False, True):
                sent, codes, cpu, kids = _measure(gateway.pid, url, auth, new)
                rows.append((label + (", a new connection each" if new else ""), sent, codes, cpu, kids))
            for rate in OPEN if server else []:
                sent, codes, cpu, kids = _measure(gateway.pid, url, auth, False, rate)
                rows.append((f"{label}, open loop at {rate:.0f} rps", sent, codes, cpu, kids))
            for s in held:
                s.close()
            gateway.terminate()
            gateway.wait()
    finally:
        bench.kill_all(procs)
    served = rows[0][3] / max(rows[0][1], 1)
    shed = rows[2][3] / max(rows[2][1], 1)
    print(f"closed loop, {CONNS} connections, {SECONDS:g} s per row; CPU time from /proc/<pid>/stat\n")
    print(
        "| request | answered | status codes | gateway CPU s | CPU µs per request | ledger writer CPU µs per request |"
    )
    print("|---|---|---|---|---|---|")
    for label, sent, codes, cpu, kids in rows:
        print(
            f"| {label} | {sent} | {codes} | {cpu:.2f} | {1e6 * cpu / max(sent, 1):.1f} "
            f"| {1e6 * kids / max(sent, 1):.1f} |"
        )
    # one core, offered 2 S with S = 1 / served: g * served + (2 S - g) * shed = 1
    s_rate = 1 / served
    g = (1 - 2 * s_rate * shed) / (served - shed)
    print(
        f"\none core at 2x saturation: goodput <= {100 * g / s_rate:.0f}% of saturation "
        f"(shed / served {shed / served:.3f})"
    )


def _waited_cost_us() -> list[float]:
    """CPU µs per ``waited()`` call on a real uvloop TCP connection (five runs of 100,000 calls)."""
    import asyncio

    import uvloop

    from tokenomy.server.protocol import GuardedHttpToolsProtocol

    async def measure() -> list[float]:
        done: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.edge = GuardedHttpToolsProtocol.__new__(GuardedHttpToolsProtocol)
                self.edge.transport = transport  # type: ignore[assignment]

            def data_received(self, data: bytes) -> None:
                runs = []
                for _ in range(5):
                    began = time.process_time()
                    for _ in range(100_000):
                        self.edge.waited()
                    runs.append(10 * (time.process_time() - began))
                done.set_result(sorted(runs))

        server = await asyncio.get_running_loop().create_server(Probe, "127.0.0.1", 0)
        with socket.create_connection(server.sockets[0].getsockname()[:2]) as client:
            client.sendall(b"x")
            return await done

    return uvloop.run(measure())


if __name__ == "__main__":
    main()
    runs = _waited_cost_us()
    print(
        f"waited() check (only while overloaded): {runs[2]:.2f} µs CPU per call "
        f"(five runs {runs[0]:.2f}-{runs[-1]:.2f})"
    )
