"""Overload and the stalled-connection attack: one command, two tables.

    python bench/overload/run.py            # ~3 minutes; DURATION=5 RATES="0.5 1 2 4" WORKERS=1 by default
                                            # (ATTACKERS=0: no attack table; STALL_MS=500: the
                                            # gateway stopped that long mid-phase, 0.5x-4x S;
                                            # VARIANTS="|shed_waited_ms: 0": the overload tables
                                            # once per "|"-separated variant of server settings;
                                            # S=3000: offer multiples of that instead of each
                                            # variant's own measured S, for comparing variants;
                                            # SATURATION=closed: multiples of the closed-loop S)

It starts a fixed-answer upstream (a raw asyncio HTTP server, so the gateway is the bottleneck)
and ``tokenomy serve`` in front of it, each its own process, then:

1. **saturation**, on a gateway of the same settings but with shedding off (``shed_loop_lag_ms:
   0``): what the gateway can serve, whatever the variant would shed at exactly that load. Two
   figures: a closed loop of 64 connections for DURATION s gives the closed-loop S (200s per
   second); then a bisection (``STEPS``, 5 by default) between 0.5x and 1.05x that finds the
   highest *open-loop* rate the gateway keeps up with (every request answered 200, 98% of them
   within the phase, p99 under 500 ms: a queue that grows for the whole phase shows seconds). Its
   goodput is the open-loop S, what the same arrivals as the overload phases can get served: the
   S of the overload targets. The phases offer multiples of it (``SATURATION=closed``: of the closed-loop S, as before
   2026-12-05); goodput is printed as a share of both;
2. **no load**: an open loop at 20 rps gives the no-load p99;
3. **overload**: open loops (requests leave on schedule whatever earlier ones do) at 0.5x, 1x, 2x
   and 4x S: goodput (200s per second) and the p50/p99 of the admitted (200) requests, with
   what was shed (503);
4. **attack**: 2,300 connections (more than ``server.max_in_flight``, 2,048 by default) send a
   request head with ``Content-Length: 100000`` and one body byte, then stall; meanwhile real
   requests run at 0.5x S. Twice: against a gateway that requires API keys (the attackers have
   none), and against an open gateway behind a trusted proxy with every attacker at its own
   forwarded address (so per-address caps do not help).

Every request is the same small chat completion with ``max_tokens``. The load generator is
the overhead benchmark's open-loop ``ratebench`` (``bench/overhead/loadgen``; its ``ok_lat_ms`` is
the latency of 200s alone; built on first use with Debian's ``golang-go``); the attackers run in
their own process. The gateway (and its ledger writer) is pinned to CPU ``GW_CPU`` (1), the
upstream, the generator and the attackers to ``LG_CPU`` (0); ``PIN=0`` pins nothing. A second
table gives, per phase, what explains the first (``probes.py``): the connections the generator
dialed and how many of those connects took 0.9 s or more (a SYN dropped by a full listen queue
and retransmitted), the connections the gateway accepted, the kernel's listen-queue overflows,
the gateway's own latency for the admitted requests (ledger) beside the generator's, the mean
model calls in progress and their mean time in progress, and the calls that waited for a slot
(``server.shed_wait_ms``) and were then served or shed. Timings depend on the machine: run it on a
quiet one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import probes

ROOT = Path(__file__).resolve().parents[2]
DURATION = float(os.environ.get("DURATION", "5"))
RATES = [float(r) for r in os.environ.get("RATES", "0.5 1 2 4").split()]
ATTACKERS = int(os.environ.get("ATTACKERS", "2300"))
WORKERS = os.environ.get("WORKERS", "1")
VARIANTS = os.environ.get("VARIANTS", "").split("|")  # "|"-separated server settings to compare, "" the defaults
SATURATION = os.environ.get("SATURATION", "open")  # which S the overload phases offer multiples of
if SATURATION not in ("open", "closed"):
    raise SystemExit(f"SATURATION is open or closed, not {SATURATION!r}")
STEPS = int(os.environ.get("STEPS", "5"))  # bisection steps for the open-loop S (0: skip it)
STALL_MS = float(
    os.environ.get("STALL_MS", "0")
)  # stop the gateway this long mid-phase (a GC pause, a preemption)  # one event loop: the figures are per process
KEY = "sk-bench-overload"
BODY = json.dumps(
    {"model": "bench", "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello in one word."}]}
).encode()
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
).encode()


SLOW_MARK = b"stay in progress"
SLOW_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the fixed-answer upstream (run with: run.py upstream PORT) ----------------------------------------
class _Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buf) < head_end + 4 + length:
                return
            body = self.buf[head_end + 4 : head_end + 4 + length]
            self.buf = self.buf[head_end + 4 + length :]
            answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
                len(ANSWER),
                ANSWER,
            )
            if SLOW_MARK in body:  # a request that should stay in progress (bench/overload/cpu_cost.py)
                asyncio.get_running_loop().call_later(SLOW_S, self.t.write, answer)  # type: ignore[attr-defined]
            else:
                self.t.write(answer)  # type: ignore[attr-defined]


async def _serve_upstream(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


# -- the attackers (run with: run.py attack URL COUNT HOLD_SECONDS FORWARDED) ----------------------------
async def _attack(url: str, count: int, hold: float, forwarded: bool) -> None:
    host, port = url.removeprefix("http://").split(":")
    writers = []
    for i in range(count):
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            break
        fwd = f"x-forwarded-for: 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}\r\n" if forwarded else ""
        writer.write(
            (
                f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
                f"content-length: 100000\r\n{fwd}\r\n{{"
            ).encode()
        )
        writers.append(writer)
    print(json.dumps({"held": len(writers)}), flush=True)
    await asyncio.sleep(hold)
    for writer in writers:
        writer.close()


# -- the driver ---------------------------------------------------------------------------------------------
def _python(*args: str, cpu: int = probes.LG_CPU, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    pin = probes.pinned(cpu)
    return subprocess.Popen([sys.executable, *args], env=env, text=True, preexec_fn=pin, **popen)  # type: ignore[call-overload,no-any-return]


LOADGEN = Path(os.environ.get("LOADGEN", Path.home() / ".cache/gateway-anchors/bin/ratebench"))
LOADGEN_SRC = ROOT / "bench" / "overhead" / "loadgen" / "ratebench.go"


def _loadgen() -> Path:
    """The Go open-loop generator (``ratebench.go``), built once; Debian's golang-go is enough."""
    if not LOADGEN.exists() or LOADGEN.stat().st_mtime < LOADGEN_SRC.stat().st_mtime:
        LOADGEN.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GO111MODULE": "off", "GOCACHE": str(LOADGEN.parent.parent / "gocache")}
        if shutil.which("go") is None:
            raise SystemExit("the load generator needs Go: run bench/overhead/install.sh (Debian's golang-go)")
        build = ["go", "build", "-o", str(LOADGEN), LOADGEN_SRC.name]
        subprocess.run(build, cwd=LOADGEN_SRC.parent, env=env, check=True)
    return LOADGEN


def _load_run(
    url: str,
    rate: float,
    seconds: float,
    headers: list[str],
    in_flight: int = 4096,
    warmup: float = 1.0,
    new_connections: bool = False,
) -> dict[str, object]:
    """One open-loop phase (``in_flight`` caps the generator's concurrent requests: 64 makes it a
    closed loop of 64 connections when ``rate`` is higher than the gateway can take)."""
    body = Path(tempfile.mkstemp(suffix=".json")[1])
    body.write_bytes(BODY)
    args = [str(_loadgen()), "-url", f"{url}/v1/chat/completions", "-body", str(body), "-rate", f"{rate:.0f}"]
    args += ["-duration", f"{seconds}s", "-warmup", f"{warmup}s", "-maxinflight", str(in_flight), "-timeout", "10s"]
    for header in headers:
        args += ["-H", header]
    if new_connections:
        args.append("-newconn")
    began = time.time()
    pin = probes.pinned(probes.LG_CPU)
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=True, preexec_fn=pin).stdout
    data = json.loads(out.strip().splitlines()[-1])
    codes = {k: int(v) for k, v in data["codes"].items()}
    return {
        "window": (float(data.get("recorded_from", began + warmup)), time.time()),
        "warmup_sent": int(data.get("warmup_sent", 0)),
        "conns_opened": int(data.get("conns_opened", -1)),
        "slow_dials": int(data.get("slow_dials", -1)),
        "sent": int(data["sent"]),
        "offered_rps": data["sent"] / seconds,
        "ok_rps": float(data["achieved_ok_rps"]),
        "codes": codes,
        "p50": float(data["ok_lat_ms"]["p50"]),
        "p99": float(data["ok_lat_ms"]["p99"]),
    }


def _gateway(upstream: int, keys: bool, home: Path, extra: str = "") -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    auth = f'auth: {{keys: [{{name: bench, sha256: "{_sha256(KEY)}"}}]}}\n' if keys else ""
    server = ["metrics_key: '${BENCH_METRICS_KEY:-m}'", *([] if keys else ["trusted_proxies: ['127.0.0.1']"])]
    server += [part for part in os.environ.get("SERVER", "").split(";") if part]  # e.g. SERVER="max_in_flight: 256"
    server += [part for part in extra.split(";") if part]
    proxies = "server: {" + ", ".join(server) + "}\n"
    config = home / f"tokenomy-{port}.yaml"
    config.write_text(
        f"{auth}{proxies}cache: {{exact: {{enabled: false}}}}\n"
        f"ledger: {{path: '{home / f'ledger-{port}.db'}'}}\n"
        "models:\n  - name: bench\n    deployments:\n"
        f"      - {{provider: openai, base_url: 'http://127.0.0.1:{upstream}/v1', model: bench,"
        " api_key: '${BENCH_KEY:-sk-x}'}\n"
    )
    proc = _python(
        "-m", "tokenomy.cli", "serve", "--config", str(config), "--port", str(port), "--workers", WORKERS,
        cpu=probes.GW_CPU, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return proc, url
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the gateway did not start")


def _settle(url: str, auth: list[str]) -> None:
    """Warm the gateway up (first requests load the ledger's language model and more), then wait
    until it has drained (:func:`_drain`)."""
    _load_run(url, 200, 2, auth)
    _drain(url)


def _drain(url: str) -> None:
    """Wait until nothing is in flight and the ledger writer's queue is empty (a phase's records
    would otherwise be enriched during the next one, and the ledger read after a phase would miss
    some)."""
    for _ in range(300):
        values = probes.metrics(url)
        if values.get("tokenomy_ledger_queue_depth", 0) < 1 and values.get("tokenomy_in_flight_requests", 0) == 0:
            time.sleep(0.3)  # the last batch is committed
            return
        time.sleep(0.1)


def start_upstream(procs: list[subprocess.Popen[str]]) -> int:
    """Start the fixed-answer upstream in its own process (appended to ``procs``); its port."""
    global UPSTREAM_PID
    port = free_port()
    upstream = _python(__file__, "upstream", str(port))
    UPSTREAM_PID = upstream.pid
    procs.append(upstream)
    time.sleep(0.5)
    return port


def kill_all(procs: list[subprocess.Popen[str]]) -> None:
    """Kill whatever of ``procs`` still runs."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


UPSTREAM_PID = 0


def _stall(pid: int, after_s: float) -> threading.Thread:
    """Stop the gateway process for STALL_MS once ``after_s`` has passed (its ledger writer runs on):
    what a long garbage collection or a preemption does, and what starts a pile-up of requests in
    the kernel under an open loop."""

    def stall() -> None:
        time.sleep(after_s)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(STALL_MS / 1000)
        os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=stall, daemon=True)
    thread.start()
    return thread


def _phase(url: str, pid: int, home: Path, rate: float, auth: list[str], in_flight: int = 4096) -> dict[str, object]:
    """One load phase with what explains it: kernel counters, the gateway's counts, CPU time and
    in-app latency."""
    before_k, before_m = probes.nstat(), probes.metrics(url)
    before_load = probes.cpu_s(UPSTREAM_PID) + probes.children_cpu_s()
    stall = _stall(pid, 1.0 + DURATION / 2) if STALL_MS > 0 and rate != 20 and in_flight > 64 else None
    with probes.Sampler(url, pid) as sampler:
        r = _load_run(url, rate, DURATION, auth, in_flight=in_flight)
    if stall is not None:
        stall.join()
    r["controller"] = sampler.summary()
    since, until = r["window"]  # type: ignore[misc]
    r["in_progress"] = sampler.in_progress(since, until)
    cpu = sampler.cpu_between(since, until)  # the generator's recorded window, its warm-up left out
    wall = sampler.cpu[-1][0] - sampler.cpu[0][0]
    load = probes.cpu_s(UPSTREAM_PID) + probes.children_cpu_s() - before_load
    r["busy"] = f"{100 * cpu / (until - since):.0f} / {100 * load / wall:.0f}"
    _drain(url)
    after_k, after_m = probes.nstat(), probes.metrics(url)
    codes = dict(r["codes"])  # type: ignore[call-overload]
    r["cpu_us"] = 1e6 * cpu / max(sum(codes.values()), 1)
    r["cpu_ok_us"] = 1e6 * cpu / max(codes.get("200", 0), 1)
    ledger = home / f"ledger-{url.rsplit(':', 1)[1]}.db"
    r["app"] = probes.in_app_latency(ledger, since, until)
    r["accepted"] = probes.delta(after_m, before_m, "tokenomy_connections_accepted_total")
    r["waited"] = probes.delta(after_m, before_m, 'tokenomy_edge_refusals_total{reason="waited"}')
    r["slot_served"] = probes.delta(after_m, before_m, "tokenomy_slot_waits_served")
    r["slot_expired"] = probes.delta(after_m, before_m, 'tokenomy_edge_refusals_total{reason="wait_expired"}')
    r["closed_waiting"] = probes.delta(after_m, before_m, 'tokenomy_edge_refusals_total{reason="waiting_connections"}')
    r["overflows"] = probes.delta(after_k, before_k, "TcpExtListenOverflows")
    r["drops"] = probes.delta(after_k, before_k, "TcpExtListenDrops")
    r["syn_retrans"] = probes.delta(after_k, before_k, "TcpExtTCPSynRetrans")
    return r


def _diagnostics_row(label: str, r: dict[str, object]) -> str:
    n, p50, p99 = r["app"]  # type: ignore[misc]
    return (
        f"| {label} | {r['p50']:.1f} / {r['p99']:.1f} | {p50:.1f} / {p99:.1f} ({n}) | {r['conns_opened']} "
        f"({r['slow_dials']}) | {r['accepted']} ({r['closed_waiting']}) | {r['overflows']} / {r['drops']} "
        f"| {r['syn_retrans']} | {r['cpu_us']:.0f} / {r['cpu_ok_us']:.0f} | {r['busy']} | {r['waited']} "
        f"| {r['controller']} | {r['in_progress']} | {r['slot_served']} / {r['slot_expired']} |"
    )


def _sustainable(url: str, closed: float, auth: list[str]) -> tuple[float, list[str]]:
    """The open-loop S: the goodput at the highest open-loop rate (bisection between 0.5x and 1.05x
    the closed-loop S) the gateway keeps up with -- every request answered 200, at least 98% of them
    within the phase, and a p99 under 500 ms (a queue that grows for the whole phase reaches seconds;
    a single stall of a few hundred ms does not count) -- on a gateway that does not shed; and one
    line per rate tried."""
    low, high, best, tried = 0.5 * closed, 1.05 * closed, 0.0, []
    for _ in range(STEPS):
        rate = (low + high) / 2
        _settle(url, auth)
        r = _load_run(url, rate, DURATION, auth)
        codes = dict(r["codes"])  # type: ignore[call-overload]
        good, p99 = float(r["ok_rps"]), float(r["p99"])  # type: ignore[arg-type]
        kept = codes.get("200", 0) == sum(codes.values()) and good >= 0.98 * rate and p99 < 500
        tried.append(f"{rate:.0f} rps: {good:.0f} 200/s, p99 {p99:.1f} ms, {'kept up' if kept else 'fell behind'}")
        if kept:
            low, best = rate, max(best, good)
        else:
            high = rate
    return best, tried


def _overload(upstream_port: int, home: Path, procs: list[subprocess.Popen[str]], variant: str) -> float:
    """Saturation, no load and the overload phases against one gateway (``variant``: extra
    ``server:`` settings, ";"-separated); prints the two tables and returns S."""
    auth = [f"authorization: Bearer {KEY}"]
    # S is what the gateway can serve: measured with shedding off (a variant that sheds at exactly
    # saturation would otherwise lower its own S, and so raise its goodput shares)
    unshed = [part for part in variant.split(";") if part.strip() and not part.strip().startswith("shed_loop_lag_ms")]
    gateway, url = _gateway(upstream_port, keys=True, home=home, extra=";".join([*unshed, "shed_loop_lag_ms: 0"]))
    procs.append(gateway)
    _settle(url, auth)
    sat = _phase(url, gateway.pid, home, 50_000, auth, in_flight=64)
    closed = float(sat["ok_rps"])  # type: ignore[arg-type]
    s_open, tried = _sustainable(url, closed, auth) if STEPS > 0 else (0.0, [])
    chosen = s_open if SATURATION == "open" and s_open > 0 else closed
    saturation = float(os.environ.get("S", "0")) or chosen
    gateway.terminate()
    gateway.wait()
    gateway, url = _gateway(upstream_port, keys=True, home=home, extra=variant)
    procs.append(gateway)
    _settle(url, auth)
    quiet = _phase(url, gateway.pid, home, 20, auth)
    phases = []
    for factor in RATES:
        _settle(url, auth)
        phases.append((factor, _phase(url, gateway.pid, home, factor * saturation, auth)))
    gateway.terminate()
    gateway.wait()
    sat_shed = dict(sat["codes"]).get("503", 0)  # type: ignore[call-overload]
    settings = "; ".join(part for part in (os.environ.get("SERVER", ""), variant) if part) or "defaults"
    print(f"### server settings: {settings}\n")
    print(f"closed-loop S = {closed:.0f} rps (64 connections back to back, {sat_shed} shed); open-loop S = "
          f"{s_open:.0f} rps ({'; '.join(tried) or 'not measured'}); the phases offer multiples of "
          f"{saturation:.0f} rps; no-load p50 / p99 = {quiet['p50']:.1f} / {quiet['p99']:.1f} ms\n")  # fmt: skip
    print("| offered | offered rps | goodput rps (% of closed-loop S / of open-loop S) | admitted p50 / p99 ms "
          "| p99 over no-load | 503 | other |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for factor, r in phases:
        codes = dict(r["codes"])  # type: ignore[call-overload]
        other = sum(v for k, v in codes.items() if k not in ("200", "503"))
        good = float(r["ok_rps"])  # type: ignore[arg-type]
        print(
            f"| {factor:g}x S | {float(r['offered_rps']):.0f} | {good:.0f} ({100 * good / closed:.0f}% / "  # type: ignore[arg-type]
            f"{f'{100 * good / s_open:.0f}%' if s_open else '-'}) "
            f"| {r['p50']:.1f} / {r['p99']:.1f} | +{float(r['p99']) - float(quiet['p99']):.1f} "  # type: ignore[arg-type]
            f"| {codes.get('503', 0)} | {other} |"
        )
    print(
        "\n| phase | admitted p50 / p99 ms, generator | in-app p50 / p99 ms (rows) "
        "| connections dialed (connect >= 0.9 s) | connections accepted (closed at once: per-address cap) "
        "| listen overflows / drops | SYN retransmits | gateway CPU µs per answer / per 200 "
        "| CPU % gateway / upstream + generator | shed for waiting unread "
        "| lowest limit / highest loop lag ms / highest queue delay ms "
        "| mean in progress / mean ms in progress | waited for a slot: served / shed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(_diagnostics_row("saturation (closed loop)", sat))
    print(_diagnostics_row("no load (20 rps)", quiet))
    for factor, r in phases:
        print(_diagnostics_row(f"{factor:g}x S", r))
    print()
    return saturation


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="tokenomy-overload-"))
    upstream_port = free_port()
    upstream = _python(__file__, "upstream", str(upstream_port))
    global UPSTREAM_PID
    UPSTREAM_PID = upstream.pid
    procs = [upstream]
    auth = [f"authorization: Bearer {KEY}"]
    try:
        time.sleep(0.5)
        stalled = f"; the gateway stopped for {STALL_MS:g} ms mid-phase in each overload phase" if STALL_MS else ""
        print(f"{probes.pinning()}; {WORKERS} worker(s); {DURATION:g} s per phase{stalled}\n")
        saturation = 0.0
        for variant in VARIANTS:
            s = _overload(upstream_port, home, procs, variant)
            saturation = saturation or s
        if ATTACKERS <= 0:
            return
        print("\n| attack | stalled connections held | real requests | served 200 | share served | p99 ms |")
        print("|---|---|---|---|---|---|")
        for keys, label in ((True, "no key, gateway requires keys"), (False, "open gateway, one address each")):
            gateway, url = _gateway(upstream_port, keys=keys, home=home)
            procs.append(gateway)
            legit = auth if keys else ["x-forwarded-for: 192.0.2.1"]
            _settle(url, legit)
            attack = _python(
                __file__, "attack", url, str(ATTACKERS), str(DURATION + 6), "0" if keys else "1", stdout=subprocess.PIPE
            )
            procs.append(attack)
            assert attack.stdout is not None
            held = json.loads(attack.stdout.readline())["held"]
            time.sleep(1.0)
            r = _load_run(url, 0.5 * saturation, DURATION, legit)
            ok = dict(r["codes"]).get("200", 0)  # type: ignore[call-overload]
            sent = int(r["sent"])  # type: ignore[call-overload]
            print(f"| {label} | {held} | {sent} | {ok} | {100 * ok / max(sent, 1):.2f}% | {r['p99']:.1f} |")
            attack.kill()
            gateway.terminate()
            gateway.wait()
    finally:
        kill_all(procs)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        asyncio.run(_serve_upstream(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "attack":
        asyncio.run(_attack(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"))
    else:
        main()
