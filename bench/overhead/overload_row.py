"""One markdown row of bench/overhead/overload.sh from a ratebench JSON summary on stdin."""

import json
import sys

d = json.loads(sys.stdin.read())
codes, lat = d["codes"], d["lat_ms"]
other = sum(v for k, v in codes.items() if k not in ("200", "503")) + d["errors"]
print(
    f"| {d['target_rps']:.0f} | {d['achieved_ok_rps']:.0f} | {codes.get('200', 0)} | {codes.get('503', 0)} | {other} "
    f"| {lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.0f} |"
)
