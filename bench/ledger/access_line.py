"""Instructions per access-log line as the writer process writes it (text and JSON formats).

    PYTHONPATH=src .venv/bin/python bench/ledger/access_line.py [--lines 3000]

Runs this script under valgrind's callgrind twice per format, writing 0 and ``--lines`` lines of a
typical miss-path record through the writer's code (``AccessLog.write`` with logging set up as
``tokenomy serve`` sets it up, standard error sent to /dev/null), and prints the difference per
line: the writer process's user-space instructions per access line (system calls not counted).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(fmt: str, lines: int) -> None:
    from tokenomy.ledger.record import LedgerRecord
    from tokenomy.redaction import install_log_redaction
    from tokenomy.server import logging_setup
    from tokenomy.telemetry.access_log import AccessLog

    logging_setup.configure("info", "json" if fmt == "json" else "text")
    install_log_redaction()
    now = time.time()
    records = [
        LedgerRecord(
            request_id=f"req_{i:032x}",
            ts=now,
            requested_model="fake-model",
            served_model="fake-model",
            deployment="openai/fake-model",
            provider="openai",
            prompt_tokens=20,
            completion_tokens=9,
            token_source="provider",
            language="en",
            cache="miss",
            route="round-robin:openai/fake-model",
            prompt_hash="a" * 32,
            latency_ms=1.234,
            price_source="unknown",
            client_request_id=None,
        )
        for i in range(lines)
    ]
    access = AccessLog()
    access.write(records[:1] if lines else [])  # first-use costs (imports, caches) in both runs
    for start in range(1, lines, 16):  # the writer writes what one read brought: a few records at a time
        access.write(records[start : start + 16])


def instructions(fmt: str, lines: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
               "--child", fmt, "--lines", str(lines)]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONMALLOC": "malloc"}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for line in out.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit("no totals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.lines)
        return
    print(f"Writer process: instructions per access line (callgrind, {args.lines} lines minus 1 line)\n")
    print("| format | instructions per line |")
    print("|---|---:|")
    for fmt in ("text", "json"):
        per_line = (instructions(fmt, args.lines) - instructions(fmt, 1)) / (args.lines - 1)
        print(f"| {fmt} | {per_line:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
