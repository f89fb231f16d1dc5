"""Memory growth of `tokenomy serve` over many requests with distinct prompts.

    PYTHONPATH=src .venv/bin/python bench/overhead/growth.py [--total 60000] [--every 6000]
    PYTHONPATH=src .venv/bin/python bench/overhead/growth.py --total 1000000 --every 50000   # the full run

The gateway runs in this process exactly as ``tokenomy serve`` runs it (uvicorn, uvloop, the edge's
httptools protocol, the app with its lifespan, logging at INFO into a file) with the default
configuration: usage ledger on (its writer process), exact cache on, metrics, access log. A fake
OpenAI upstream (aiohttp) and the load generator each run in a child process. The load generator
sends ``--every`` requests at a time, ``--concurrency`` connections at once, each request a chat
completion with a prompt no earlier request had (so each is looked up, stored and recorded), each
connection closed and reopened after ``--reconnect`` requests (clients come and go). Between two
batches nothing is in flight: this process collects garbage and counts what is left.

Prints one row per batch: the gateway process's RSS; what glibc's malloc has handed out and what
it holds from the system (``mallinfo2``; Python's small-object arenas are mapped apart from it and
not included); the memory blocks Python has allocated (``sys.getallocatedblocks``: strings and
bytes too, which the garbage collector does not track); its writer process's RSS, the level-1 cache
(entries and the bytes it counts against its bound, 256 MB by default; ``--l1-mb`` to reach the
bound sooner), the objects the garbage collector tracks, the types whose count grew most since the
first batch (the first batch is the warm-up: pools, caches of compiled things and the like fill
during it), and the answers that were not 200 (the gateway sheds load with 503s when its loop lags,
as on a busy shared machine). Other kinds of load: ``--reset`` (clients close their connections
with a TCP reset), ``--rate R`` (batches at a fixed rate from ``ratebench``, keep-alive, the same
body on the miss path). To find what grows: ``--show TYPE`` prints, at the end, new objects of a
type and what refers to them; ``--tracemalloc N`` the allocation sites that grew most (slower: every
allocation is traced).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchtool import body as chat_body  # noqa: E402
from stage_profile import model_table, start_upstream  # noqa: E402

RATEBENCH = os.path.expanduser("~/.cache/gateway-anchors/bin/ratebench")

LOADGEN = r"""
import asyncio, sys
import orjson

import socket, struct
HOST, RESET = sys.argv[1], sys.argv[5] == "1"
PORT, CONC, RECONNECT = (int(a) for a in sys.argv[2:5])
HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer sk-growth\r\ncontent-length: %d\r\n\r\n")
counter = 0

def body():
    global counter
    counter += 1
    return orjson.dumps({"model": "fake-model", "max_tokens": 32, "temperature": 0, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": f"Request {counter}: say hello in one short sentence."}]})

async def one(reader, writer):
    data = body()
    writer.write(HEAD % len(data) + data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise SystemExit("the answer has no content-length")
    await reader.readexactly(length)
    return status

async def worker(n, bad):
    done = 0
    while done < n:
        reader, writer = await asyncio.open_connection(HOST, PORT)
        for _ in range(min(RECONNECT, n - done)):
            status = await one(reader, writer)
            if status != 200:
                bad.append(status)
            done += 1
        if RESET:  # an abrupt close: the gateway sees a reset, not an orderly end
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        await writer.wait_closed()

async def batch(n):
    bad = []
    shares = [n // CONC + (1 if i < n % CONC else 0) for i in range(CONC)]
    await asyncio.gather(*(worker(s, bad) for s in shares if s))
    return bad

async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            return
        bad = await batch(int(line))
        print(orjson.dumps(bad).decode(), flush=True)

asyncio.run(main())
"""


async def ratebench(port: int, rate: float, n: int) -> int:
    """``n`` requests at a fixed rate with ``ratebench`` (open loop, keep-alive; the same body, sent
    with ``Cache-Control: no-cache``, so each is stored and recorded); returns how many failed."""
    body = Path(os.environ["TOKENOMY_HOME"]) / "body.json"
    if not body.exists():
        body.write_text(chat_body("fake-model"))
    proc = await asyncio.create_subprocess_exec(
        RATEBENCH, "-url", f"http://127.0.0.1:{port}/v1/chat/completions", "-body", str(body), "-rate", str(rate),
        "-duration", f"{n / rate:.3f}s", "-warmup", "0s", "-expect", '"usage"', "-H", "Cache-Control: no-cache",
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    result = json.loads(out)
    return int(result.get("bad_body", 0)) + sum(n for code, n in result.get("codes", {}).items() if code != "200")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _MallInfo2(ctypes.Structure):
    _names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in _names.split()]


def heap_mb() -> tuple[float, float]:
    """(MB glibc's malloc has handed out and not had back, MB it holds from the system); (0, 0)
    elsewhere. Python's own small-object arenas are mapped apart from malloc and not in these."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return 0.0, 0.0
    return (info.uordblks + info.hblkhd) / 1e6, (info.arena + info.hblkhd) / 1e6


def type_counts() -> Counter[str]:
    """Objects the garbage collector tracks, by type (after a full collection)."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        counts[_name(obj)] += 1
    return counts


def _describe(holder: object) -> str:
    """A referrer, briefly: its type, its size, and for a list or dict who holds it in turn."""
    size = f" of {len(holder)}" if isinstance(holder, list | dict | set) else ""  # type: ignore[arg-type]
    above = ""
    if isinstance(holder, list | dict | set):
        above = " <- " + ", ".join([repr(r)[:100] for r in gc.get_referrers(holder) if not isinstance(r, list)][:2])
    return f"{_name(holder)}{size}{above}"


def _name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def l1_state(app: Any) -> tuple[int, float]:
    """Entries in the level-1 cache and the MB it counts against its bound."""
    memory = app.gateway.cache.memory
    return len(memory), memory.bytes_used / 1e6


async def run(args: argparse.Namespace) -> None:
    import uvicorn

    from tokenomy.config import parse_config
    from tokenomy.server import logging_setup
    from tokenomy.server.run import create_app, http_protocol

    extra = "" if args.l1_mb is None else f"cache: {{exact: {{memory_bytes: {int(args.l1_mb * 1e6)}}}}}\n"
    config = parse_config(extra + model_table(args.upstream_port))
    log_file = open(Path(os.environ["TOKENOMY_HOME"]) / "gateway.log", "a")  # noqa: SIM115, ASYNC230
    logging_setup.configure(config.server.log_level, config.server.log_format, log_file)
    app = create_app(config)
    sock = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, loop="uvloop", http=http_protocol(config, app), lifespan="on", access_log=False, log_config=None,
            log_level="warning", backlog=4096, timeout_keep_alive=30, proxy_headers=False, server_header=False,
            date_header=False,
        )
    )  # fmt: skip
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
        await asyncio.sleep(0.05)
    loadgen = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOADGEN, "127.0.0.1", str(port), str(args.concurrency), str(args.reconnect),
        "1" if args.reset else "0", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert loadgen.stdin is not None and loadgen.stdout is not None
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(args.tracemalloc)
    writer_pid = getattr(app.gateway.ledger, "writer_pid", None)
    print(
        f"Growth of `tokenomy serve` (default configuration, in this process) over {args.total:,} requests "
        f"with distinct prompts, {args.concurrency} connections, each reopened after {args.reconnect} requests; "
        f"counted after every {args.every:,} (nothing in flight, after a full garbage collection); level-1 "
        f"cache bound {config.cache.exact.memory_bytes / 1e6:,.0f} MB. "
        "Growth is against the first row (the warm-up).\n"
    )
    print(
        "| requests | s | gateway RSS MB | malloc in use / held MB | Python blocks | writer RSS MB | level-1 entries "
        "| level-1 MB counted | tracked objects | growth since row 1 | top growing types (count) | not 200 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    first: Counter[str] | None = None
    snapshot0 = None
    sent = 0
    start = time.monotonic()
    while sent < args.total:
        n = min(args.every, args.total - sent)
        if args.rate:
            bad = await ratebench(port, args.rate, n)
        else:
            loadgen.stdin.write(f"{n}\n".encode())
            await loadgen.stdin.drain()
            bad = len(json.loads(await loadgen.stdout.readline()))
        sent += n
        await asyncio.sleep(0.2)  # connections closed by the client are gone from the server too
        counts = type_counts()
        entries, l1_mb = l1_state(app)
        total = sum(counts.values())
        if first is None:
            first = counts
            first_ids = {id(o) for o in gc.get_objects() if _name(o) == args.show} if args.show else set()
            growth, top = 0, ""
            if args.tracemalloc:
                snapshot0 = tracemalloc.take_snapshot()
        else:
            delta = counts - first
            growth = total - sum(first.values())
            top = ", ".join(f"{name} +{d:,}" for name, d in delta.most_common(args.top))
        writer_mb = rss_mb(writer_pid) if writer_pid else 0.0
        used, held = heap_mb()
        print(
            f"| {sent:,} | {time.monotonic() - start:.0f} | {rss_mb(os.getpid()):.1f} | {used:.1f} / {held:.1f} "
            f"| {sys.getallocatedblocks():,} | {writer_mb:.1f} "
            f"| {entries:,} | {l1_mb:.1f} | {total:,} | {growth:+,} | {top} | {bad} |",
            flush=True,
        )
    if args.show:
        print(f"\nNew objects of type {args.show} since row 1 (up to 5), and what refers to them:\n")
        gc.unfreeze()  # the app froze its start-up heap: let referrers be found there too
        every = gc.get_objects()
        new = [o for o in every if _name(o) == args.show and id(o) not in first_ids][:5]
        for obj in new:
            holders = [r for r in gc.get_referrers(obj) if r is not every and r is not new]
            print(f"- {repr(obj)[:120]} <- {'; '.join(_describe(h) for h in holders[:3])}")
        del every, new
    if args.tracemalloc and snapshot0 is not None:
        print("\nAllocation sites that grew most since row 1 (tracemalloc):\n")
        for stat in tracemalloc.take_snapshot().compare_to(snapshot0, "traceback")[: args.top]:
            where = stat.traceback.format()[-1].strip()
            print(f"- {stat.size_diff / 1024:+,.1f} KiB, {stat.count_diff:+,} blocks: {where}")
    loadgen.stdin.write(b"\n")
    await loadgen.stdin.drain()
    await loadgen.wait()
    server.should_exit = True
    await serving
    log_file.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=60_000, help="requests in all (the full run: 1000000)")
    parser.add_argument("--every", type=int, default=6_000, help="requests per row")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--reconnect", type=int, default=100, help="requests per client connection")
    parser.add_argument("--top", type=int, default=4, help="growing types (and allocation sites) shown")
    parser.add_argument("--reset", action="store_true", help="clients close their connections with a reset")
    parser.add_argument("--rate", type=float, default=0, help="fixed-rate batches with ratebench instead")
    parser.add_argument("--show", default=None, metavar="TYPE", help="at the end, show new objects of this type")
    parser.add_argument("--l1-mb", type=float, default=None, help="level-1 cache bound (default: the config's, 256)")
    parser.add_argument("--upstream-port", type=int, default=18741)
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace allocations too")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="tokenomy-growth-")
    os.environ["TOKENOMY_HOME"] = home
    upstream = start_upstream(args.upstream_port)
    try:
        import uvloop

        uvloop.run(run(args))
    finally:
        upstream.terminate()
        upstream.wait()
        subprocess.run(["rm", "-rf", home], check=False)


if __name__ == "__main__":
    main()
