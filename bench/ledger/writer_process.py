"""CPU the writer process spends per record, at fixed rates (ledger record + its cache entry).

    PYTHONPATH=src .venv/bin/python bench/ledger/writer_process.py [--seconds 4] [--rates 500 1000 5000]

Starts the writer process as the gateway does (SQLite ledger and cache files in a temporary
directory), sends it, at each fixed rate, one message per simulated request: a typical ledger
record and a 300-byte level-2 cache entry, as the gateway sends them. Reports the writer
process's CPU time (user + system, from /proc, 10 ms ticks) per record, and the sender's CPU per
send. Stable under other people's load only to ~20%: repeat it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from tokenomy.config import parse_config
from tokenomy.ledger import channel
from tokenomy.ledger.channel import Batch, CachePut, RecordMsg
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.writer_launcher import WriterLauncher, new_socket_path, writer_settings


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(sock: object, writer_pid: int, rate: int, seconds: float) -> tuple[float, float]:
    n = int(rate * seconds)
    c0, s0, t0 = cpu_seconds(writer_pid), 0.0, time.perf_counter()
    for i in range(n):
        record = LedgerRecord(
            request_id=f"r{rate}-{i}", ts=time.time(), requested_model="m", served_model="m", deployment="openai/m",
            provider="openai", prompt_tokens=20, completion_tokens=9, token_source="provider", language="en",
            cache="miss", route="round-robin:openai/m", prompt_hash="a" * 32, latency_ms=1.2,
        )  # fmt: skip
        put = CachePut(f"k{rate}-{i}", b"v" * 300, "t/default/", "m", "untagged", time.time() + 60)
        a = time.thread_time()
        data = channel.encode(Batch([put, RecordMsg(record)]))
        while True:
            try:
                sock.send(data)  # type: ignore[attr-defined]
                break
            except BlockingIOError:
                time.sleep(0.001)
        s0 += time.thread_time() - a
        target = t0 + (i + 1) / rate
        while time.perf_counter() < target:
            pass
    time.sleep(0.5)  # let the last batch be stored
    return (cpu_seconds(writer_pid) - c0) / n * 1e6, s0 / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", type=int, nargs="+", default=[500, 1000, 5000])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokenomy-writer-bench-"))
    config = parse_config(
        f"""
ledger: {{path: "{tmp / "ledger.db"}"}}
cache: {{exact: {{path: "{tmp / "cache.db"}"}}}}
models:
  - name: m
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${{K:-x}}", model: gpt-4o-mini}}]
"""
    )
    path = new_socket_path()
    launcher = WriterLauncher(writer_settings(config, path))
    launcher.start()
    try:
        for _ in range(500):
            if os.path.exists(path):
                break
            time.sleep(0.01)
        time.sleep(0.3)
        sock = channel.connect(path)
        assert launcher.pid is not None
        print(f"Writer process CPU per record; {args.seconds:.0f} s per rate; SQLite ledger + SQLite cache level 2.\n")
        print("| records/s | writer CPU µs per record (with its cache entry) | sender CPU µs per send |")
        print("|---:|---:|---:|")
        for rate in args.rates:
            writer, sender = measure(sock, launcher.pid, rate, args.seconds)
            print(f"| {rate} | {writer:.1f} | {sender:.1f} |", flush=True)
        sock.close()
    finally:
        launcher.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
