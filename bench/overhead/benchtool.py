#!/usr/bin/env python3
"""Helpers for bench/overhead/run.sh and bench/stacks/run.sh (stdlib only, any python3).

  benchtool.py body MODEL                 -> the chat-completion request body both load generators send
  benchtool.py quiet MAX_BUSY TIMEOUT_S   -> wait until the machine is below MAX_BUSY (fraction) busy
                                             over 1 s; prints {"busy_frac":..,"quiet":..}
  benchtool.py snap PID [PID ...]         -> JSON snapshot: /proc/stat busy ticks + CPU ticks of each PID's tree
                                             (without the subtrees of the other PIDs)
  benchtool.py diff SNAP_A SNAP_B         -> JSON: wall_s, busy_cpu_s, irq_cpu_s (part of busy), tracked_cpu_s {pid: s},
                                             foreign_cpu_s
  benchtool.py table overhead|stacks JSONL -> markdown table of the result lines a run.sh appended

The CPU accounting follows shared/anchors/gateway/loadgen/cpuacct.py (gateway-overhead anchors):
foreign_cpu_s = machine busy CPU-seconds minus those of the tracked trees (system under test, nginx,
the run script and its waited children = the load generators); a clean run has it close to 0.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

TCK = os.sysconf("SC_CLK_TCK")


def ok_rps(result: dict[str, Any]) -> float:
    """Answers that were not errors, per second, of a wrk run: its ``rps`` less the non-2xx/3xx
    answers (a gateway that sheds at saturation answers some requests 503 at once; those are not
    throughput)."""
    errors = int(result.get("errors", {}).get("status", 0))
    if not errors:
        return float(result["rps"])
    return (int(result["requests"]) - errors) / float(result["duration_s"])


def cpu_stat() -> dict[str, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, _steal = v[:8]
    # with tick-based accounting, irq/softirq ticks are also charged to the interrupted task's stime,
    # so they belong in "busy" for the tracked-vs-machine comparison (as in the anchors' cpuacct.py)
    return {"busy": user + nice + system + irq + softirq, "irq": irq + softirq, "idle": idle + iowait}


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def post_ok(url: str, payload: bytes) -> bool:
    """POST a chat completion on the miss path (``Cache-Control: no-cache``); True on a 200."""
    import urllib.request

    req = urllib.request.Request(url, payload, {"content-type": "application/json", "cache-control": "no-cache"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def stop(proc: Any, timeout: float = 30.0) -> None:
    """SIGTERM a ``subprocess.Popen`` and wait; SIGKILL after ``timeout`` seconds."""
    import signal
    import subprocess

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_ticks(root: int, exclude: frozenset[int] = frozenset()) -> int:
    tot, stack, seen = 0, [root], set(exclude)
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2 :].split()
        tot += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        stack += children(p)
    return tot


def body(model: str) -> str:
    return json.dumps(
        {
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Say hello in one short sentence."},
            ],
            "max_tokens": 32,
            "temperature": 0,
        }
    )


def quiet(mx: float, timeout: float) -> dict[str, Any]:
    t_end = time.time() + timeout
    while True:
        a = cpu_stat()
        time.sleep(1.0)
        b = cpu_stat()
        tot = (b["busy"] - a["busy"]) + (b["idle"] - a["idle"])
        frac = (b["busy"] - a["busy"]) / tot if tot else 0.0
        if frac <= mx or time.time() > t_end:
            return {"busy_frac": round(frac, 3), "quiet": frac <= mx}


def snap(pids: list[str]) -> dict[str, Any]:
    """Each tree excludes the subtrees of the other tracked pids (the run script, tracked last, is the
    parent of the system under test; its own tree then holds just itself and the load generators)."""
    ps = [int(p) for p in pids if p and p != "null"]
    return {
        "t": time.time(),
        "stat": cpu_stat(),
        "pids": {str(p): tree_ticks(p, frozenset(ps) - {p}) for p in ps},
    }


def diff(fa: str, fb: str) -> dict[str, Any]:
    with open(fa) as f:
        a = json.load(f)
    with open(fb) as f:
        b = json.load(f)
    busy = (b["stat"]["busy"] - a["stat"]["busy"]) / TCK
    irq = (b["stat"].get("irq", 0) - a["stat"].get("irq", 0)) / TCK
    tracked = {p: (b["pids"].get(p, 0) - a["pids"][p]) / TCK for p in a["pids"]}
    return {
        "wall_s": round(b["t"] - a["t"], 2),
        "busy_cpu_s": round(busy, 2),
        "irq_cpu_s": round(irq, 2),
        "tracked_cpu_s": {k: round(v, 2) for k, v in tracked.items()},
        "foreign_cpu_s": round(busy - sum(tracked.values()), 2),
    }


# ------------------------------------------------------------------------------------------ tables


def load(path: str) -> dict[str, dict[str, Any]]:
    """system -> {"order": i, "rss": MiB, "wrk": {...}, "rate_N": {...}, "error": str}"""
    out: dict[str, dict[str, Any]] = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            s = out.setdefault(r["system"], {"order": len(out)})
            if r.get("result", True) is None:  # the load generator printed nothing
                s["error"] = {"message": f"{r['phase']} produced no result"}
            s[r["phase"]] = r
    return out


def rate_cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    if r.get("skipped"):
        return f"saturated (max {r['sat_rps']} rps)"
    x = r["result"]
    cell = f"{x['lat_ms']['p50']:.2f} / {x['lat_ms']['p99']:.2f}"
    ok = x["codes"].get("200", 0)
    if x["dropped_inflight_cap"] > 0 or x["achieved_ok_rps"] < 0.97 * x["target_rps"]:
        cell = f"SATURATED (ok {x['achieved_ok_rps']:.0f} rps) " + cell
    elif ok == 0:
        cell = "no 200s"
    return cell


def errors_of(s: dict[str, Any]) -> int:
    n = 0
    for k, r in s.items():
        if k == "wrk":
            w = r["result"]
            n += sum(w["errors"].values())
            n += w.get("non2xx", 0)
        elif k.startswith("rate_") and not r.get("skipped"):
            x = r["result"]
            n += x["errors"] + x.get("bad_body", 0)
            n += sum(c for code, c in x["codes"].items() if code not in ("200", "err"))
    return n


def gw_cpu_ms(r: dict[str, Any] | None) -> str:
    """CPU ms per request of the system under test during the wrk run (first tracked tree)."""
    if not r or not r.get("cpu") or r["result"]["requests"] == 0:
        return "-"
    tr = list(r["cpu"]["tracked_cpu_s"].values())
    if len(tr) < 3:  # direct: no separate gateway tree
        return "-"
    return f"{1000 * tr[0] / r['result']['requests']:.3f}"


def foreign(s: dict[str, Any]) -> str:
    fs = [
        100 * r["cpu"]["foreign_cpu_s"] / r["cpu"]["wall_s"]
        for k, r in s.items()
        if isinstance(r, dict) and r.get("cpu") and r["cpu"]["wall_s"]
        if k == "wrk" or k.startswith("rate_")
    ]
    return f"{max(0.0, max(fs)):.0f}" if fs else "-"  # a few % below 0 is accounting noise


def table(kind: str, path: str) -> str:
    data = load(path)
    rates = sorted({int(k[5:]) for s in data.values() for k in s if k.startswith("rate_")})
    lines = []
    if kind == "overhead":
        hdr = ["system", "saturation rps (answers not in error)"] + [f"p50/p99 ms at {r} rps" for r in rates]
        hdr += ["errors", "idle RSS MB", "CPU ms/req (sat.)", "foreign CPU %"]
    else:
        hdr = ["stack", "saturation rps", "wrk p50/p99 ms"] + [f"p50/p99 ms at {r} rps" for r in rates]
        hdr += ["CPU ms/req", "errors", "idle RSS MB", "foreign CPU %"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for name, s in sorted(data.items(), key=lambda kv: kv[1]["order"]):
        if "error" in s:
            lines.append(f"| {name} | FAILED: {s['error']['message']} |" + " |" * (len(hdr) - 2))
            continue
        w = s.get("wrk")
        sat = f"{ok_rps(w['result']):.0f}" if w else "-"
        rss = s["rss_idle"]["rss_mib"] if s.get("rss_idle", {}).get("rss_mib") is not None else "-"
        cells = [name, sat]
        if kind == "stacks":
            cells.append(f"{w['result']['lat_ms']['p50']:.2f} / {w['result']['lat_ms']['p99']:.2f}" if w else "-")
        cells += [rate_cell(s.get(f"rate_{r}")) for r in rates]
        if kind == "overhead":
            cells += [str(errors_of(s)), str(rss), gw_cpu_ms(w), foreign(s)]
        else:
            cells += [gw_cpu_ms(w), str(errors_of(s)), str(rss), foreign(s)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """Median (min-max) of the repetitions' values."""
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def reps_table(paths: list[str], reference: str = "bare aiohttp+uvloop proxy", direct: str = "direct (nginx)") -> str:
    """One row per system over several repetitions (one JSON-lines file each): median (min-max)."""
    reps = [load(p) for p in paths]
    systems: list[str] = []
    for rep in reps:
        systems += [n for n in sorted(rep, key=lambda n: rep[n]["order"]) if n not in systems]
    rates = sorted({int(k[5:]) for rep in reps for s in rep.values() for k in s if k.startswith("rate_")})
    hdr = [
        "system",
        "saturation rps (answers not in error)",
        f"% of the {reference.split(' ')[0]} pass-through (same run)",
    ]
    hdr += [f"p99 ms at {r} rps" for r in rates]
    top = max(rates) if rates else None
    if top is not None:
        hdr.append(f"p99 overhead over direct at {top} rps, ms")
    hdr += ["errors", "idle RSS MB", "CPU ms/req (sat.)", "runs"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]

    def sat(rep: dict[str, dict[str, Any]], name: str) -> float | None:
        w = rep.get(name, {}).get("wrk")
        return ok_rps(w["result"]) if w and w.get("result") else None

    def p99(rep: dict[str, dict[str, Any]], name: str, rate: int) -> float | None:
        r = rep.get(name, {}).get(f"rate_{rate}")
        if not r or r.get("skipped") or not r.get("result"):
            return None
        x = r["result"]
        if x["dropped_inflight_cap"] > 0 or x["achieved_ok_rps"] < 0.97 * x["target_rps"]:
            return None
        return float(x["lat_ms"]["p99"])

    for name in systems:
        runs = [rep for rep in reps if name in rep and "error" not in rep[name]]
        if not runs:
            lines.append(f"| {name} | FAILED |" + " |" * (len(hdr) - 2))
            continue
        sats = [v for rep in runs if (v := sat(rep, name)) is not None]
        ratios = [100 * a / b for rep in runs if (a := sat(rep, name)) is not None and (b := sat(rep, reference))]
        cells = [name, _spread(sats), _spread(ratios, "{:.0f}%") if name != reference else "100%"]
        for rate in rates:
            vals = [v for rep in runs if (v := p99(rep, name, rate)) is not None]
            cells.append(_spread(vals, "{:.2f}") if vals else "saturated")
        if top is not None:
            over = [
                a - b
                for rep in runs
                if (a := p99(rep, name, top)) is not None and (b := p99(rep, direct, top)) is not None
            ]
            cells.append(_spread(over, "{:.2f}") if over and name != direct else "-")
        cpu = [float(c) for rep in runs if (c := gw_cpu_ms(rep[name].get("wrk"))) != "-"]
        rss = [float(rep[name]["rss_idle"]["rss_mib"]) for rep in runs if rep[name].get("rss_idle", {}).get("rss_mib")]
        cells += [str(sum(errors_of(rep[name]) for rep in runs)), _spread(rss), _spread(cpu, "{:.3f}"), str(len(runs))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    cmd = sys.argv[1]
    if cmd == "body":
        print(body(sys.argv[2]))
    elif cmd == "quiet":
        print(json.dumps(quiet(float(sys.argv[2]), float(sys.argv[3]))))
    elif cmd == "snap":
        print(json.dumps(snap(sys.argv[2:])))
    elif cmd == "diff":
        print(json.dumps(diff(sys.argv[2], sys.argv[3])))
    elif cmd == "table":
        print(table(sys.argv[2], sys.argv[3]))
    elif cmd == "reps":
        print(reps_table(sys.argv[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
