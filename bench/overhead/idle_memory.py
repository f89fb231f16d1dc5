"""Idle memory of every process of ``tokenomy serve`` (default configuration, a hosted model).

    PYTHONPATH=src .venv/bin/python bench/overhead/idle_memory.py [--workers 1 2] [--src before=DIR ...]

Starts a fake OpenAI upstream (the aiohttp server of ``stage_profile.py``), then ``tokenomy serve``
with this directory's ``tokenomy.yaml`` pointed at it (ledger on with its writer process, exact cache
on, metrics, access log) once per ``--workers`` value, sends ``--requests`` miss-path chat
completions (``Cache-Control: no-cache``: looked up, stored and recorded) so that everything a
request touches is loaded, waits ``--settle`` seconds, and reads each process of the tree from
``/proc/PID/smaps_rollup``: RSS (what ``bench/overhead/run.sh`` sums over the tree), PSS (shared
pages split between the processes that map them), USS (pages no other process maps) and anonymous
memory. The last column lists the heavy native libraries mapped into the process (numpy, scipy,
scikit-learn, ONNX Runtime, llama.cpp, USearch): none should be in a gateway that serves a hosted
model. Other people's load does not move these figures.

``--src LABEL=DIR`` (repeatable) runs the same with another source tree first on the path (e.g. an
older checkout's ``src``), for a before/after table; the default is this checkout's ``src``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchtool import body as chat_body  # noqa: E402
from benchtool import children, post_ok, stop  # noqa: E402
from stage_profile import model_table, start_upstream  # noqa: E402

HEAVY = re.compile(r"site-packages/(numpy|scipy|sklearn|onnxruntime|llama_cpp|usearch|torch)[/.]")


def _tree(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children(pid))
    return out


def _role(pid: int, root: int, workers: int) -> str:
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if "writer_process" in cmd:
        return "writer"
    if "tokenomy.server.workers" in cmd:
        return "worker"
    if pid == root:
        return "supervisor" if workers > 1 else "gateway"
    return cmd[:40]


def _memory(pid: int) -> dict[str, int]:
    """kB figures of one process from smaps_rollup (USS = private clean + private dirty)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
        "anon": fields["Anonymous"],
    }


def _heavy(pid: int) -> str:
    names = sorted({m.group(1) for m in HEAVY.finditer(Path(f"/proc/{pid}/maps").read_text())})
    return ", ".join(names) or "none"


def measure(label: str, src: str, workers: int, args: argparse.Namespace, home: str) -> list[list[str]]:
    config = Path(home) / f"gw-{workers}.yaml"
    config.write_text(model_table(args.upstream_port))
    env = {**os.environ, "PYTHONPATH": src, "TOKENOMY_HOME": f"{home}/{label}-{workers}"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-c", "from tokenomy.cli import main; main()", "serve", "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(args.port), "--workers", str(workers)]
    log = open(Path(home) / f"serve-{label}-{workers}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    payload = chat_body("fake-model").encode()
    try:
        deadline = time.monotonic() + 120
        while not post_ok(url, payload):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tokenomy serve ({label}) did not answer; log: {log.name}")
            time.sleep(0.2)
        ok = sum(post_ok(url, payload) for _ in range(args.requests))
        time.sleep(args.settle)
        rows = []
        for pid in _tree(proc.pid):
            mem = _memory(pid)
            sizes = [f"{mem[k] / 1024:.1f}" for k in ("rss", "pss", "uss", "anon")]
            rows.append([label, str(workers), _role(pid, proc.pid, workers), *sizes, _heavy(pid)])
        print(f"  {label}, {workers} worker(s): {ok + 1} requests answered", file=sys.stderr)
        return rows
    finally:
        stop(proc)
        log.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--src", action="append", default=None, help="LABEL=DIR: a source tree to measure")
    parser.add_argument("--requests", type=int, default=50, help="miss-path requests before the reading")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before the reading")
    parser.add_argument("--port", type=int, default=18733)
    parser.add_argument("--upstream-port", type=int, default=18734)
    args = parser.parse_args(argv)
    sources = [s.split("=", 1) for s in args.src] if args.src else [["this checkout", str(HERE.parents[1] / "src")]]
    home = tempfile.mkdtemp(prefix="tokenomy-idle-memory-")
    upstream = start_upstream(args.upstream_port)
    rows: list[list[str]] = []
    try:
        for label, src in sources:
            for workers in args.workers:
                rows.extend(measure(label, src, workers, args, home))
    finally:
        upstream.terminate()
        upstream.wait()
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"Idle memory per process of `tokenomy serve` (bench/overhead/tokenomy.yaml: ledger with its writer "
        f"process, exact cache, metrics, access log; a hosted model), after {args.requests + 1} miss-path "
        f"requests and {args.settle:g} s idle; MB from /proc/PID/smaps_rollup; Python {sys.version.split()[0]}.\n"
    )
    print("| source | workers | process | RSS MB | PSS MB | USS MB | anonymous MB | heavy native libraries mapped |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
