"""CPU per request of three upstream HTTP clients in one harness: aiohttp (as the gateway uses it),
pycurl driven from the event loop, pyreqwest.

    python3 bench/overhead/clients.py                 # CPU µs per request, 3 repetitions each
    python3 bench/overhead/clients.py --callgrind     # instructions per request (load does not move them)

Each client runs alone in a child process pinned to CPU 1 (``--cpu``) on uvloop: ``--concurrency``
coroutines (64) send POSTs of the overhead benchmark's chat-completion body (160 bytes, 2 headers,
keep-alive) to the nginx fake upstream on :8090 (pinned to CPU 0) and read each whole answer;
``--warmup`` requests first, then ``--requests`` measured. CPU µs per request is the child's user +
system time (all its threads) over the measured requests; rps is wall-clock and only meaningful on
a quiet machine. ``--callgrind`` runs each child under valgrind's callgrind with instrumentation on
only for the measured requests: user-space instructions per request, all threads, system calls not
counted. The clients live in their own virtual environment (``--venv``, made on first use with the
aiohttp and uvloop versions of the project's environment, pycurl 7.49.0 and pyreqwest 0.15.1): they
are not project dependencies. Clients and the adapter code: ``client_adapters.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("ANCHORS_HOME", Path.home() / ".cache/gateway-anchors")) / "clients-venv"
PINS = {"pycurl": "7.49.0", "pyreqwest": "0.15.1"}
URL = "http://127.0.0.1:8090/v1/chat/completions"


def ensure_venv(venv: Path) -> Path:
    """The clients' virtual environment (made once); returns its python."""
    python = venv / "bin/python"
    if not python.exists():
        from importlib.metadata import version

        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pins = [f"aiohttp=={version('aiohttp')}", f"uvloop=={version('uvloop')}"]
        pins += [f"{name}=={v}" for name, v in PINS.items()]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    return python


async def drive(name: str, n: int, warmup: int, concurrency: int, callgrind: bool) -> dict[str, Any]:
    """In the child: ``warmup`` then ``n`` requests; CPU seconds of the measured part."""
    sys.path.insert(0, str(HERE))
    from benchtool import body
    from client_adapters import CLIENTS

    client = CLIENTS[name](concurrency)
    await client.start()
    payload = body("fake-model").encode()
    headers = {"content-type": "application/json", "authorization": "Bearer sk-fake"}
    errors = 0

    async def worker(count: int) -> None:
        nonlocal errors
        for _ in range(count):
            status, answer = await client.post(URL, payload, headers)
            if status != 200 or b'"usage"' not in answer:
                errors += 1

    async def batch(total: int) -> None:
        shares = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
        await asyncio.gather(*(worker(s) for s in shares if s))

    await batch(warmup)
    if callgrind:
        _instrument("on")  # blocks the loop on purpose: nothing is in flight
    t0, c0 = time.perf_counter(), os.times()
    await batch(n)
    c1, t1 = os.times(), time.perf_counter()
    if callgrind:
        _instrument("off")
    await client.close()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {"client": name, "requests": n, "errors": errors, "rps": n / (t1 - t0), "cpu_us": cpu / n * 1e6}


def _instrument(state: str) -> None:
    """Switch callgrind's instrumentation of this process on or off."""
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def child(args: argparse.Namespace, python: Path, name: str, out: str | None = None) -> dict[str, Any]:
    cmd = ["taskset", "-c", str(args.cpu)]
    if out is not None:
        cmd += ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    cmd += [str(python), __file__, "--child", name, "--requests", str(args.requests), "--warmup", str(args.warmup),
            "--concurrency", str(args.concurrency)]  # fmt: skip
    if out is not None:
        cmd.append("--in-callgrind")
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if out is not None:
        totals = [line for line in Path(out).read_text().splitlines() if line.startswith("totals:")]
        result["instructions"] = int(totals[0].split()[1]) / args.requests
        Path(out).unlink()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", nargs="+", default=["aiohttp", "pycurl", "pyreqwest"])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--callgrind", action="store_true", help="instructions per request under callgrind")
    parser.add_argument("--venv", type=Path, default=VENV)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--in-callgrind", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import uvloop

        print(
            json.dumps(uvloop.run(drive(args.child, args.requests, args.warmup, args.concurrency, args.in_callgrind)))
        )
        return
    if args.callgrind and args.requests == 20_000:
        args.requests, args.warmup, args.reps = 2_000, 500, 1
    python = ensure_venv(args.venv)
    subprocess.run([str(HERE / "upstream/start.sh")], check=True, capture_output=True)
    tmp = tempfile.mkdtemp(prefix="tokenomy-clients-")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in args.clients}
    try:
        for rep in range(args.reps):
            for name in args.clients:
                out = f"{tmp}/{name}.{rep}.out" if args.callgrind else None
                results[name].append(child(args, python, name, out))
                print(f"  rep {rep + 1}: {json.dumps(results[name][-1])}", file=sys.stderr)
    finally:
        subprocess.run([str(HERE / "upstream/stop.sh")], check=False, capture_output=True)
    print(table(results, args))


def table(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    what = "instructions per request (callgrind, all threads, user space)" if args.callgrind else "CPU µs per request"
    lines = [
        f"{what}; {args.requests:,} requests after {args.warmup:,} warm-up, {args.concurrency} at a time, keep-alive, "
        f"pinned to CPU {args.cpu} (nginx on CPU 0), uvloop; {args.reps} repetition(s): median (min-max).",
        "",
        "| client | " + ("instructions / request" if args.callgrind else "CPU µs / request | rps (wall-clock)")
        + " | errors |",
        "|---|" + ("---:|" if args.callgrind else "---:|---:|") + "---:|",
    ]  # fmt: skip
    labels = {"aiohttp": "aiohttp (as in HttpPool)", "pycurl": "pycurl, CurlMulti on the event loop",
              "pyreqwest": "pyreqwest"}  # fmt: skip
    for name, rows in results.items():
        cells = []
        keys = ["instructions"] if args.callgrind else ["cpu_us", "rps"]
        for key in keys:
            values = [r[key] for r in rows]
            mid = statistics.median(values)
            cells.append(f"{mid:,.0f}" if len(values) == 1 else f"{mid:,.0f} ({min(values):,.0f}-{max(values):,.0f})")
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(cells) + f" | {sum(r['errors'] for r in rows)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
