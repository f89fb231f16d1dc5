"""CPU cost per request of each stage of Tokenomy's request path (miss path, default config).

    PYTHONPATH=src .venv/bin/python bench/overhead/stage_profile.py [--requests 3000] [--reps 5]

What it measures, and why this way: the machine is shared, so wall-clock throughput is noisy;
CPU time spent by this process per request is much steadier. The script starts a fake OpenAI
upstream (a real aiohttp HTTP server) in a child process, builds the gateway in this process from
a config, and sends it requests one at a time through its ASGI interface (no HTTP server in
front: uvicorn's own cost per request is measured separately in ``bench/stacks``). Every request
is the overhead benchmark's body with ``Cache-Control: no-cache``, so the exact cache skips the
lookup and stores every answer, and the ledger records every request: the path every new prompt
takes. Each stage is wrapped in a timer that reads the main thread's CPU clock before and after
it; a stage's own cost is its inclusive time minus the inclusive time of the stage it calls.
"background threads" is the process's CPU time minus the main thread's (ledger writer, cache
writer). Logging is set up as ``tokenomy serve`` sets it up (INFO, text lines, the access log on,
on standard error, which the ledger writer process inherits and writes the access lines to), with
standard error sent to a file. The timers themselves cost ~0.3 µs each (the "timers" row).

Prints one markdown table per configuration: median µs per request over ``--reps`` repetitions,
with min-max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchtool import body as chat_body  # noqa: E402

UPSTREAM = r"""
import sys
from aiohttp import web
BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fake-model","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}')
async def chat(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

CALLGRIND = False  # set in the child that valgrind runs (--callgrind)
CPROFILE: Any = None  # --cprofile: a cProfile.Profile around the measured requests
PER_REQUEST: list[float] = []  # --tail: main-thread CPU seconds of each request
COLLECTIONS: list[tuple[int, float, int]] = []  # --tail: (generation, CPU seconds, request index) per collection

CONFIGS: dict[str, str] = {
    "default": "",  # ledger on (SQLite), exact cache on (storing every miss: no-cache), metrics
    "default, access log off": "server: {access_log: false}\n",
    "ledger on, cache off": "cache: {exact: {enabled: false}}\n",
    "ledger off, cache off": "ledger: {enabled: false}\ncache: {exact: {enabled: false}}\n",
}


def model_table(port: int) -> str:
    return f"""
models:
  - name: fake-model
    deployments:
      - {{provider: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: "${{PROFILE_FAKE_KEY:-sk-fake}}",
          model: fake-model}}
"""


class Timed:
    """Wraps a stage; accumulates the main thread's CPU time spent inside it (inclusive)."""

    def __init__(self, name: str, stage: Any) -> None:
        self.name = name
        self.stage = stage
        self.total = 0.0

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        t0 = time.thread_time()
        try:
            return await self.stage(ctx, call_next)
        finally:
            self.total += time.thread_time() - t0


class TimedHandler:
    """Wraps the terminal handler (ready check + dispatch: the provider and its HTTP client)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.total = 0.0

    async def __call__(self, ctx: Any) -> Any:
        t0 = time.thread_time()
        try:
            return await self.handler(ctx)
        finally:
            self.total += time.thread_time() - t0


async def drive(app: Any, body: bytes, headers: list[tuple[bytes, bytes]], n: int) -> float:
    """Send ``n`` requests through the ASGI app one at a time; returns main-thread CPU seconds."""
    scope_base = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8200),
    }  # fmt: skip
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.thread_time()
    for _ in range(n):
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        t0 = time.thread_time()
        await app(dict(scope_base), receive, send)
        PER_REQUEST.append(time.thread_time() - t0)
    spent = time.thread_time() - start
    bad = [s for s in statuses if s != 200]
    if bad:
        raise SystemExit(f"{len(bad)} requests failed (first status {bad[0]})")
    return spent


async def profile(config_text: str, n: int, warmup: int) -> dict[str, float]:
    from tokenomy.config import parse_config
    from tokenomy.pipeline.chain import build_chain
    from tokenomy.server import logging_setup
    from tokenomy.server.app import TokenomyApp
    from tokenomy.server.run import create_app

    config = parse_config(config_text)
    # logging as `tokenomy serve` sets it up (INFO, text, the access log on: standard error, which
    # the ledger writer process inherits and writes the access lines to), with standard error sent
    # to a file
    log_file = open(Path(os.environ["TOKENOMY_HOME"]).parent / "gateway.log", "a")  # noqa: SIM115, ASYNC230
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    os.dup2(log_file.fileno(), 2)
    logging_setup.configure(config.server.log_level, config.server.log_format)
    server = config.server.model_copy(update={"shed_loop_lag_ms": 0.0})
    app: TokenomyApp = create_app(config.model_copy(update={"server": server}))
    gw = app.gateway
    timed = [Timed(stage.name, stage) for stage in gw.stages]
    terminal = TimedHandler(gw.handle_terminal) if hasattr(gw, "handle_terminal") else None
    if terminal is None:
        from tokenomy.gateway import _ReadyCheck
        from tokenomy.pipeline.dispatch import Dispatcher

        terminal = TimedHandler(_ReadyCheck(gw.providers, Dispatcher(gw.providers)))
    gw.handle = build_chain(timed, terminal)  # type: ignore[arg-type]
    await gw.start()
    for _ in range(200):
        if all(gw.readiness().values()):
            break
        await asyncio.sleep(0.01)
    import gc

    gc.freeze()
    body = chat_body("fake-model").encode()
    headers = [
        (b"host", b"127.0.0.1:8200"), (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-cache"),
        (b"user-agent", b"profile"), (b"accept", b"*/*"),
    ]  # fmt: skip
    await drive(app, body, headers, warmup)
    await asyncio.to_thread(gw.ledger.flush)
    await gw.cache.drain()
    for t in timed:
        t.total = 0.0
    terminal.total = 0.0
    writer_pid = getattr(gw.ledger, "writer_pid", None)
    w0 = _cpu_seconds(writer_pid)
    p0 = time.process_time()
    if CALLGRIND:
        _callgrind("on")
    if CPROFILE is not None:
        CPROFILE.enable()
    main = await drive(app, body, headers, n)
    if CPROFILE is not None:
        CPROFILE.disable()
    await asyncio.to_thread(gw.ledger.flush)  # the writer's work for these requests counts too
    await gw.cache.drain()
    if CALLGRIND:
        _callgrind("off")
    process = time.process_time() - p0
    writer = _cpu_seconds(writer_pid) - w0
    # the timer calls themselves: two thread_time() reads per wrapped stage
    t0 = time.thread_time()
    for _ in range(10_000):
        time.thread_time()
    per_read = (time.thread_time() - t0) / 10_000
    await gw.close()
    sys.stderr.flush()
    os.dup2(saved_stderr, 2)
    os.close(saved_stderr)
    log_file.close()
    us = 1e6 / n
    row: dict[str, float] = {}
    incl = [t.total for t in timed] + [terminal.total]
    names = [t.name for t in timed] + ["dispatch (provider + aiohttp client)"]
    row["edge (body, parse, validate, context, response)"] = (main - incl[0]) * us
    for i, name in enumerate(names):
        own = incl[i] - (incl[i + 1] if i + 1 < len(incl) else 0.0)
        row[name if i == len(names) - 1 else f"stage: {name}"] = own * us
    row["timers"] = per_read * 2 * len(incl) * 1e6
    row["main thread, total"] = main * us
    row["background threads (ledger writer, cache writer)"] = (process - main) * us
    row["gateway process, total"] = process * us
    row["writer process (ledger and cache writes)"] = writer * us
    row["both processes"] = (process + writer) * us
    return row


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (0 when there is none)."""
    if pid is None:
        return 0.0
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _callgrind(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port)])
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fake upstream did not start")


def table_note() -> str:
    return "µs of CPU per request; median (min-max) over the repetitions in the files."


def table(results: dict[str, list[dict[str, float]]]) -> str:
    names = list(results)
    lines = [
        "| part | " + " | ".join(f"{n}: median (min-max)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key in results[names[0]][0]:
        cells = []
        for name in names:
            values = [r[key] for r in results[name]]
            cells.append(f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def callgrind_total(out_file: str) -> int:
    """Instructions collected in a callgrind output file."""
    for line in Path(out_file).read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out_file}")


def instructions(names: list[str], args: argparse.Namespace, home: str) -> None:
    """Instructions per request per configuration, under callgrind (whole process, all threads)."""
    print(
        f"Instructions per request (valgrind --tool=callgrind, all threads of the gateway process, "
        f"{args.requests} sequential requests after {args.warmup} warm-up; instrumentation on only "
        "while they run and the writers finish their work; user-space instructions only: system calls "
        "and the separate writer process are not counted, see bench/ledger/writer_process.py)\n"
    )
    print("| configuration | gateway process: instructions per request | vs the first row |")
    print("|---|---:|---:|")
    base = None
    for name in names:
        out = f"{home}/callgrind.{abs(hash(name))}.out"
        cmd = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--inner-callgrind", name, "--requests", str(args.requests),
            "--warmup", str(args.warmup), "--port", str(args.port),
        ]  # fmt: skip
        env = {**os.environ, "TOKENOMY_HOME": f"{home}/cg-{abs(hash(name))}", "PYTHONMALLOC": "malloc"}
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        per = callgrind_total(out) / args.requests
        Path(out).unlink()
        base = base or per
        print(f"| {name} | {per:,.0f} | {per - base:+,.0f} |", flush=True)


def tail(args: argparse.Namespace) -> str:
    """Percentiles of the main thread's CPU per request (default config) and the collections among them."""
    import gc

    import uvloop

    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            COLLECTIONS.append((info["generation"], time.thread_time() - started[0], len(PER_REQUEST)))

    gc.callbacks.append(on_gc)
    uvloop.run(profile(CONFIGS["default"] + model_table(args.port), args.requests, args.warmup))
    gc.callbacks.remove(on_gc)
    measured = sorted(PER_REQUEST[args.warmup :])
    n = len(measured)

    def pct(q: float) -> str:
        return f"{measured[min(n - 1, int(q * n))] * 1e6:,.0f}"

    own = [(gen, cpu) for gen, cpu, index in COLLECTIONS if index >= args.warmup]
    per_gen = ", ".join(
        f"gen{g}: {len(cpus)} (longest {max(cpus, default=0) * 1e6:,.0f} µs)"
        for g in (0, 1, 2)
        for cpus in [[c for x, c in own if x == g]]
    )
    return (
        f"Main-thread CPU µs per request, default configuration on the miss path, {n} sequential requests after "
        f"{args.warmup} warm-up (in process, through the ASGI interface):\n\n"
        "| p50 | p90 | p99 | p99.9 | max | garbage collections during them |\n|---:|---:|---:|---:|---:|---|\n"
        f"| {pct(0.5)} | {pct(0.9)} | {pct(0.99)} | {pct(0.999)} | {measured[-1] * 1e6:,.0f} | {per_gen} |"
    )


def merge(paths: list[str]) -> str:
    """One table from several ``--raw`` files (e.g. runs alternated with another source tree)."""
    results: dict[str, list[dict[str, float]]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            results.setdefault(f"{Path(path).stem}: {row.pop('config')}", []).append(row)
    return table(results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--port", type=int, default=18731)
    parser.add_argument("--only", default=None, help="run only configs whose name contains this")
    parser.add_argument("--cprofile", type=int, default=0, help="print the top N functions by own time instead")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request per config instead")
    parser.add_argument("--inner-callgrind", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tail", action="store_true", help="per-request CPU percentiles and GC, default config")
    parser.add_argument("--raw", default=None, help="also append every repetition's row to this JSON-lines file")
    parser.add_argument("--merge", nargs="+", default=None, help="print one table from --raw files and exit")
    args = parser.parse_args(argv)
    if args.merge:
        print(table_note(), merge(args.merge), sep="\n\n")
        return
    names = [n for n in CONFIGS if not args.only or args.only in n]
    import uvloop

    if args.inner_callgrind:  # one configuration, under valgrind, started by --callgrind
        global CALLGRIND
        CALLGRIND = True
        uvloop.run(profile(CONFIGS[args.inner_callgrind] + model_table(args.port), args.requests, args.warmup))
        return
    if args.cprofile:
        import cProfile
        import pstats

        global CPROFILE
        CPROFILE = cProfile.Profile()
        args.reps = 1
    home = tempfile.mkdtemp(prefix="tokenomy-profile-")
    upstream = start_upstream(args.port)
    try:
        if args.callgrind:
            instructions(names, args, home)
            return
        if args.tail:
            os.environ["TOKENOMY_HOME"] = f"{home}/tail"
            print(tail(args))
            return
        print(
            f"CPU µs per request by stage; {args.requests} sequential requests per repetition after "
            f"{args.warmup} warm-up, {args.reps} repetitions (configurations interleaved); Python "
            f"{sys.version.split()[0]}, uvloop; {os.cpu_count()} CPUs; main thread's CPU clock "
            "(time.thread_time) per stage, the process's CPU clock (all threads) for the total.\n"
        )
        results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for rep in range(args.reps):
            for name in names:
                os.environ["TOKENOMY_HOME"] = f"{home}/{rep}-{abs(hash(name))}"
                config = CONFIGS[name] + model_table(args.port)
                results[name].append(uvloop.run(profile(config, args.requests, args.warmup)))
                if args.raw:
                    with open(args.raw, "a") as fh:
                        fh.write(json.dumps({"config": name, **results[name][-1]}) + "\n")
                print(f"  {name}: rep {rep + 1}: {results[name][-1]['both processes']:.1f} µs/request", file=sys.stderr)
                if CPROFILE is not None:
                    pstats.Stats(CPROFILE).sort_stats("tottime").print_stats(args.cprofile)
                    CPROFILE = cProfile.Profile()
        print(table(results))
    finally:
        upstream.terminate()
        upstream.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
