"""Instructions per request of the real server path: ``tokenomy serve`` under callgrind.

    PYTHONPATH=src .venv/bin/python bench/overhead/server_instructions.py [--requests 300] [--concurrency 4]

Why: on a shared machine, wall-clock throughput and even CPU time per request move with other
people's load; instruction counts do not. ``stage_profile.py --callgrind`` counts the request path
driven through ASGI in process; this counts the whole served path as a client sees it — uvicorn
and its HTTP parser, the edge's admission, the pipeline, logging (the access log on, to a file),
the upstream client (``server.upstream_client``; pyreqwest's Tokio thread included) — in the
gateway process, with the overhead benchmark's config (``tokenomy.yaml``: default configuration)
and the nginx fake upstream of ``upstream/`` on :8090. ``--only NAME`` (repeatable) runs only the
configurations named (the rows of the table it prints).
Every request is the benchmark body with ``Cache-Control: no-cache`` (the miss path), sent by an
aiohttp client in this process, ``--concurrency`` at a time. The streamed row sends the same body
with ``"stream": true`` to nginx's :8094 (21 content events 50 ms apart, the usage event,
``[DONE]``; the stream of ``ttft.py``), ``--streams`` streams, 4 x ``--concurrency`` at a time, and
counts instructions per stream. Instrumentation is on only while the
counted requests run. Not counted: system calls (kernel time) and the writer process (a child of
the gateway; ``bench/ledger/writer_process.py`` measures it). Event-loop-lag shedding is off (the
gateway runs ~50x slower under valgrind); every other defence stays on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchtool import body as chat_body  # noqa: E402

EXTRA = {
    "default": "",
    "default, upstream client aiohttp": "  upstream_client: aiohttp\n",
    "default, upstream client pyreqwest": "  upstream_client: pyreqwest\n",
    "default, access log off": "  access_log: false\n",
    "default, streamed (per stream of 21 events, :8094)": "",
}
STREAMED = "streamed"  # configs whose name holds this: stream: true, fake-model mapped to nginx :8094


async def send(url: str, n: int, concurrency: int, stream: bool = False) -> int:
    """POST ``n`` miss-path requests, ``concurrency`` at a time; the number answered 200 (for a
    stream: 200 and ending in ``[DONE]``)."""
    import aiohttp

    body = chat_body("fake-model").encode()
    if stream:
        body = body[:-1] + b', "stream": true}'
    headers = {"content-type": "application/json", "cache-control": "no-cache"}
    ok = 0
    left = n
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal ok, left
            while left > 0:
                left -= 1
                async with session.post(url, data=body, headers=headers) as resp:
                    data = await resp.read()
                    ok += resp.status == 200 and (not stream or data.rstrip().endswith(b"data: [DONE]"))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def wait_ready(url: str, proc: subprocess.Popen[bytes], stream: bool, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the gateway exited before answering")
        try:
            if asyncio.run(send(url, 1, 1, stream)) == 1:
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit("the gateway did not answer in time")


def measure(name: str, args: argparse.Namespace, home: str) -> float:
    config = Path(home) / f"{abs(hash(name))}.yaml"
    stream = STREAMED in name
    models = (HERE / "tokenomy.yaml").read_text()
    if stream:
        models = models.replace("http://127.0.0.1:8090/v1", "http://127.0.0.1:8094/v1")
    config.write_text(models + f"server:\n  shed_loop_lag_ms: 0\n{EXTRA[name]}")
    out = Path(home) / f"{abs(hash(name))}.callgrind"
    env = {**os.environ, "TOKENOMY_HOME": f"{home}/{abs(hash(name))}", "PYTHONMALLOC": "malloc", "FAKE_KEY": "sk-fake"}
    log = open(Path(home) / f"{abs(hash(name))}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         sys.executable, "-m", "tokenomy.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
         "--port", str(args.port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    try:
        wait_ready(url, proc, stream)
        n, warmup, concurrency = args.requests, args.warmup, args.concurrency
        if stream:  # each stream lasts ~1 s at the upstream: fewer, more at a time
            n, warmup, concurrency = args.streams, args.streams // 2, 4 * args.concurrency
        asyncio.run(send(url, warmup, concurrency, stream))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        ok = asyncio.run(send(url, n, concurrency, stream))
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
        if ok != n:
            raise SystemExit(f"{n - ok} requests failed (see {log.name})")
    finally:
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1]) / n
    raise SystemExit(f"no totals in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--streams", type=int, default=160, help="streams counted (the streamed config)")
    parser.add_argument("--port", type=int, default=18240)
    parser.add_argument("--only", action="append", default=None, help="run only configs named this (repeatable)")
    args = parser.parse_args()
    subprocess.run([str(HERE / "upstream" / "start.sh")], check=True, capture_output=True)
    home = tempfile.mkdtemp(prefix="tokenomy-server-instr-")
    print(
        f"Instructions per request, `tokenomy serve` under callgrind (gateway process, user space), "
        f"{args.requests} miss-path requests after {args.warmup} warm-up, {args.concurrency} at a time\n"
    )
    print("| configuration | instructions per request |")
    print("|---|---:|")
    try:
        for name in EXTRA:
            if args.only and name not in args.only:
                continue
            print(f"| {name} | {measure(name, args, home):,.0f} |", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
