"""Summarize bench/ledger/gateway.sh runs: median saturation rps per ledger setting, loss against off."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


def main(path: str, records: str) -> None:
    """Print the markdown table."""
    runs: dict[str, list[float]] = defaultdict(list)
    p99: dict[str, list[float]] = defaultdict(list)
    with open(path) as fh:
        lines = fh.readlines()
    for line in lines:
        row = json.loads(line)
        if row.get("phase") == "wrk" and row.get("result"):
            runs[row["system"]].append(row["result"]["rps"])
            p99[row["system"]].append(row["result"]["lat_ms"]["p99"])
    base = statistics.median(runs["ledger off"]) if runs.get("ledger off") else None
    print("| ledger | saturation rps (median) | rounds | p99 ms at saturation | vs off |")
    print("|---|---|---|---|---|")
    for name in ("ledger off", "ledger metrics-only", "ledger sqlite"):
        if name not in runs:
            continue
        med = statistics.median(runs[name])
        loss = f"{(med / base - 1) * 100:+.1f}%" if base else "-"
        rounds = ", ".join(f"{r:.0f}" for r in runs[name])
        print(
            f"| {name.removeprefix('ledger ')} | {med:.0f} | {rounds} | {statistics.median(p99[name]):.2f} | {loss} |"
        )
    print(f"\nSQLite ledger rows written during the sqlite rounds: {records}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
