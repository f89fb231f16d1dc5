"""Time to first token through the gateway against direct, with 200 streams in flight.

    PYTHONPATH=src .venv/bin/python bench/overhead/ttft.py [--streams 200] [--reps 3] [--duration 10]

The nginx fake upstream's :8094 answers every streaming chat completion with an SSE stream whose
first event leaves at once and 20 more follow 50 ms apart (about 1 s a stream, like a model
generating tokens). ``ttftbench`` (``loadgen/ttftbench.go``, built on first use) keeps
``--streams`` streams in flight at all times (closed loop: a stream that ends is replaced at once)
and records, per stream, the time from the send to the first SSE event (TTFT) and to the end.

Systems, in turn, ``--reps`` times: the upstream called directly, then ``tokenomy serve`` in its
default configuration (usage ledger on with its writer process, exact cache on, metrics, access
log) with ``fake-model`` mapped to :8094, every request sent with ``Cache-Control: no-cache`` (the
miss path: looked up, stored, recorded). Pinned as ``run.sh`` pins: the gateway on CPU 1 (``--gw-cpu``),
nginx and the load generator on CPU 0 (``--lg-cpu``). Prints one markdown table: TTFT p50 / p99 per
system (median and range over the repetitions), and the overhead, the gateway's TTFT minus the
direct TTFT of the same repetition.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchtool import TCK, body, stop, tree_ticks  # noqa: E402

ANCHORS = Path(os.environ.get("ANCHORS_HOME", Path.home() / ".cache/gateway-anchors"))
TTFTBENCH = ANCHORS / "bin/ttftbench"
DIRECT = "http://127.0.0.1:8094/v1/chat/completions"
CONFIG = """# written by bench/overhead/ttft.py: the default configuration, fake-model -> nginx :8094 (SSE)
models:
  - name: fake-model
    deployments:
      - {provider: openai, base_url: "http://127.0.0.1:8094/v1", api_key: "${FAKE_KEY:-sk-fake}", model: fake-model}
"""


def build_loadgen() -> None:
    """Build ttftbench into the benchmark tools' directory (Debian golang-go, stdlib only)."""
    source = HERE / "loadgen/ttftbench.go"
    if TTFTBENCH.exists() and TTFTBENCH.stat().st_mtime >= source.stat().st_mtime:
        return
    TTFTBENCH.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GO111MODULE": "off", "GOCACHE": str(ANCHORS / "gocache")}
    subprocess.run(["go", "build", "-o", str(TTFTBENCH), "ttftbench.go"], cwd=source.parent, env=env, check=True)


def stream_ok(url: str, payload: bytes, headers: dict[str, str] | None = None) -> bool:
    """One streaming request: a 200 whose body ends with ``data: [DONE]``."""
    req = urllib.request.Request(url, payload, {"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status == 200 and b"data: [DONE]" in resp.read()
    except OSError:
        return False


def run_loadgen(args: argparse.Namespace, url: str, body_file: Path, headers: list[str]) -> dict[str, Any]:
    cmd = ["taskset", "-c", str(args.lg_cpu), str(TTFTBENCH), "-url", url, "-body", str(body_file),
           "-streams", str(args.streams), "-duration", f"{args.duration}s", "-warmup", f"{args.warmup}s"]  # fmt: skip
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def gateway(args: argparse.Namespace, home: Path) -> subprocess.Popen[bytes]:
    config = home / "tokenomy.yaml"
    config.write_text(CONFIG)
    log = open(home / "gateway.log", "ab")  # noqa: SIM115
    cmd = ["taskset", "-c", str(args.gw_cpu), *shlex.split(args.tokenomy), "serve", "--config", str(config),
           "--host", "127.0.0.1", "--port", str(args.port)]  # fmt: skip
    env = {**os.environ, "TOKENOMY_HOME": str(home / "state"), "FAKE_KEY": "sk-fake"}
    return subprocess.Popen(cmd, stdout=log, stderr=log, env=env)


def measure(args: argparse.Namespace, rep: int, body_file: Path, payload: bytes, tmp: Path) -> list[dict[str, Any]]:
    rows = [{"system": "direct (nginx :8094)", **run_loadgen(args, DIRECT, body_file, [])}]
    home = tmp / f"gw-{rep}"
    home.mkdir()
    proc = gateway(args, home)
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    try:
        deadline = time.monotonic() + 120
        while not stream_ok(url, payload, {"cache-control": "no-cache"}):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not answer a stream; log: {home / 'gateway.log'}")
            time.sleep(0.2)
        time.sleep(1)
        t0, c0 = time.monotonic(), tree_ticks(proc.pid)
        result = run_loadgen(args, url, body_file, ["Cache-Control: no-cache"])
        cpu = (tree_ticks(proc.pid) - c0) / TCK / (time.monotonic() - t0)
    finally:
        stop(proc)
    rows.append({"system": "Tokenomy default, miss path", "gateway_cpu": cpu, **result})
    return rows


def cell(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def table(reps: list[list[dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [
        f"TTFT at {args.streams} streams in flight (closed loop), {args.reps} repetition(s) of {args.duration} s "
        f"after {args.warmup} s warm-up; median (min-max) over the repetitions; gateway on CPU {args.gw_cpu}, "
        f"nginx and ttftbench on CPU {args.lg_cpu}.",
        "",
        "| system | streams/s | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | whole stream p50 / p99 ms | errors "
        "| gateway CPU: cores / ms per stream |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, name in enumerate(r["system"] for r in reps[0]):
        rows = [rep[i] for rep in reps]
        cpu = "-"
        if "gateway_cpu" in rows[0]:
            per_stream = cell([r["gateway_cpu"] / r["streams_per_s"] * 1000 for r in rows])
            cpu = f"{cell([r['gateway_cpu'] for r in rows])} / {per_stream}"
        lines.append(
            f"| {name} | {cell([r['streams_per_s'] for r in rows], '{:.0f}')} "
            f"| {cell([r['ttft_ms']['p50'] for r in rows])} | {cell([r['ttft_ms']['p90'] for r in rows])} "
            f"| {cell([r['ttft_ms']['p99'] for r in rows])} "
            f"| {cell([r['total_ms']['p50'] for r in rows], '{:.0f}')} "
            f"/ {cell([r['total_ms']['p99'] for r in rows], '{:.0f}')} "
            f"| {sum(r['errors'] for r in rows)} | {cpu} |"
        )
    over50 = [rep[1]["ttft_ms"]["p50"] - rep[0]["ttft_ms"]["p50"] for rep in reps]
    over99 = [rep[1]["ttft_ms"]["p99"] - rep[0]["ttft_ms"]["p99"] for rep in reps]
    lines.append(f"| **TTFT overhead (gateway minus direct, same repetition)** | | **{cell(over50)}** | "
                 f"| **{cell(over99)}** | | | |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--port", type=int, default=8201)
    parser.add_argument("--gw-cpu", type=int, default=1)
    parser.add_argument("--lg-cpu", type=int, default=0)
    parser.add_argument("--tokenomy", default=str(Path(sys.executable).parent / "tokenomy"), help="tokenomy command")
    args = parser.parse_args(argv)
    build_loadgen()
    env = {**os.environ, "UPSTREAM_CPU": str(args.lg_cpu)}
    subprocess.run([str(HERE / "upstream/start.sh")], check=True, env=env, capture_output=True)
    tmp = Path(tempfile.mkdtemp(prefix="tokenomy-ttft-"))
    try:
        payload = json.dumps({**json.loads(body("fake-model")), "stream": True,
                              "stream_options": {"include_usage": True}}).encode()  # fmt: skip
        body_file = tmp / "body.json"
        body_file.write_bytes(payload)
        if not stream_ok(DIRECT, payload):
            raise SystemExit("nginx :8094 did not answer a stream (bench/overhead/upstream/nginx.conf)")
        reps = []
        for rep in range(args.reps):
            reps.append(measure(args, rep, body_file, payload, tmp))
            for r in reps[-1]:
                print(
                    f"  repetition {rep + 1}: {r['system']}: TTFT p50 {r['ttft_ms']['p50']:.2f} "
                    f"p99 {r['ttft_ms']['p99']:.2f} ms, {r['streams_per_s']:.0f} streams/s, {r['errors']} errors",
                    file=sys.stderr,
                )
        print(table(reps, args))
    finally:
        subprocess.run([str(HERE / "upstream/stop.sh")], check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
