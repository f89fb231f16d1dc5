"""A distilled student's latency through the gateway: one request at a time over HTTP.

Starts ``tokenomy serve`` with the student as a local model, waits for ``/readyz``, then sends the
test queries one by one (official ``openai`` client, keep-alive) and prints p50/p99 wall time and
the client's and the gateway's CPU time per request. Prints a markdown table.

    .venv/bin/python bench/distill/gateway_latency.py STUDENT_DIR [--requests 300]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

DATA = Path(__file__).parent / "data"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("student", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with gzip.open(DATA / "test.csv.gz", "rt", encoding="utf-8") as handle:
        texts = [r["text"] for r in csv.DictReader(handle)][: args.requests]
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "gateway.yaml"
        config.write_text(
            "models:\n  - name: intent-student\n    deployments:\n"
            f'      - {{provider: local, model: distilled, path: "{args.student.resolve()}"}}\n'
            "local: {embeddings: {n_threads: 1}}\nledger: {enabled: false}\n"
        )
        env = {**os.environ, "TOKENOMY_HOME": home}
        cmd = [sys.executable, "-m", "tokenomy.cli", "serve", "--config", str(config), "--port", str(port)]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
            for text in texts[:20]:  # warm-up
                client.chat.completions.create(model="intent-student", messages=[{"role": "user", "content": text}])
            cpu0 = cpu_seconds(server.pid)
            times = []
            for text in texts:
                started = time.perf_counter()
                client.chat.completions.create(model="intent-student", messages=[{"role": "user", "content": text}])
                times.append((time.perf_counter() - started) * 1000)
            gateway_cpu_ms = (cpu_seconds(server.pid) - cpu0) * 1000 / len(texts)
        finally:
            server.terminate()
            server.wait(timeout=30)
    q = statistics.quantiles(times, n=100)
    kind = json.loads((args.student / "student.json").read_text()).get("kind", "?")
    print(f"student {args.student} ({kind})")
    print(f"{len(times)} requests one at a time; machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print()
    print("| p50 ms | p99 ms | gateway CPU ms / request |")
    print("|---|---|---|")
    print(f"| {statistics.median(times):.1f} | {q[98]:.1f} | {gateway_cpu_ms:.1f} |")


if __name__ == "__main__":
    main()
