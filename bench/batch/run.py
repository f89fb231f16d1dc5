"""Benchmark of batch execution: gateway-run throughput, interactive latency beside a batch, offline runs.

One command: ``.venv/bin/python bench/batch/run.py [--lines N] [--probes N] [--rounds N]``. It prints
a markdown table and writes it to ``bench/batch/results.md``. A fake OpenAI upstream (a real HTTP
server, answering at once) runs in its own process, so the load it carries does not slow the
probing client; the gateway runs as ``tokenomy serve --workers 1`` in a subprocess (one event
loop shared by live and batch work: the hardest case for background priority).

1. Gateway-run batch: ``--lines`` chat requests uploaded with the official client, from
   ``batches.create`` to ``completed``; requests/s, and the gateway's CPU ms per request (from
   /proc, stable when the machine is shared, unlike the wall-clock rate).
2. Interactive latency: ``--rounds`` rounds, each ``--probes`` sequential chat requests with no
   batch running, then the same while a gateway-run batch runs (a new one each round, cancelled
   after); p50/p99 of each phase, the median over rounds and its spread (min-max), the ratio of
   busy to quiet p99 per round, and how many batch requests finished meanwhile.
3. ``tokenomy batch run`` in process (``run_offline``): requests/s and CPU ms per request.

Embedding micro-batching at 1, 8, 32 and 64 clients is measured by ``bench/local/run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
from tests.fakes.openai_upstream import start_openai_fake  # noqa: E402

from tokenomy.batches.offline import run_offline  # noqa: E402
from tokenomy.config import parse_config  # noqa: E402

KEY = "sk-bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def config_text(url: str, batches_dir: Path) -> str:
    return f"""
server: {{shed_loop_lag_ms: 0}}
batches: {{dir: "{batches_dir}", concurrency: 8}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{url}", api_key: "${{B_KEY:-{KEY}}}", model: gpt-4o-mini}}
"""


def batch_file(n: int, tag: str) -> bytes:
    rows = [
        json.dumps({"custom_id": f"{tag}{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "fast", "messages": [{"role": "user", "content": f"summarize item {i}"}]}})
        for i in range(n)
    ]  # fmt: skip
    return ("\n".join(rows) + "\n").encode()


async def probes(oai: openai.AsyncOpenAI, n: int, gap_s: float = 0.0) -> list[float]:
    out = []
    for i in range(n):
        await asyncio.sleep(gap_s)
        started = time.perf_counter()
        await oai.chat.completions.create(model="fast", messages=[{"role": "user", "content": f"live {i}"}])
        out.append((time.perf_counter() - started) * 1000)
    return out


async def start_fake_process() -> tuple[asyncio.subprocess.Process, str]:
    """The fake OpenAI upstream in its own process; its base URL."""
    code = (
        "import asyncio, sys\n"
        "from tests.fakes.openai_upstream import start_openai_fake\n"
        "async def main():\n"
        f"    fake = await start_openai_fake(api_key={KEY!r})\n"
        "    print(fake.base_url, flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"},
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, (await proc.stdout.readline()).decode().strip()


async def interactive(oai: openai.AsyncOpenAI, rounds: int, probe_count: int, lines: int) -> list[str]:
    """Quiet and busy phases, alternated ``rounds`` times; table rows."""
    quiet: list[list[float]] = []
    busy: list[list[float]] = []
    progressed: list[int] = []
    for r in range(rounds):
        quiet.append(await probes(oai, probe_count, 0.002))
        uploaded = await oai.files.create(file=(f"b{r}.jsonl", batch_file(lines * 10, f"b{r}-")), purpose="batch")
        batch = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")  # fmt: skip
        await asyncio.sleep(0.3)
        before = (await oai.batches.retrieve(batch.id)).request_counts
        busy.append(await probes(oai, probe_count, 0.002))
        after = (await oai.batches.retrieve(batch.id)).request_counts
        assert after is not None and after.completed < after.total, "the batch ended before the probes did"
        progressed.append(after.completed - (before.completed if before else 0))
        await oai.batches.cancel(batch.id)
        for _ in range(600):
            if (await oai.batches.retrieve(batch.id)).status == "cancelled":
                break
            await asyncio.sleep(0.05)
    q99, b99 = [pct(x, 0.99) for x in quiet], [pct(x, 0.99) for x in busy]
    q50, b50 = [pct(x, 0.5) for x in quiet], [pct(x, 0.5) for x in busy]
    ratios = [b / q for q, b in zip(q99, b99, strict=True)]
    allq, allb = [x for phase in quiet for x in phase], [x for phase in busy for x in phase]

    def spread(values: list[float], unit: str = " ms") -> str:
        return f"{median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})"

    head = f"interactive chat, {rounds} rounds x {probe_count} sequential, 2 ms apart"
    return [
        f"| {head}, no batch running | p50 {spread(q50)} | p99 {spread(q99)} | median (min-max) over rounds |",
        f"| {head}, gateway-run batch in progress | p50 {spread(b50)} | p99 {spread(b99)} "
        f"| batch requests done per phase: {spread([float(n) for n in progressed], '')} |",
        f"| busy p99 / quiet p99, per round | | {spread(ratios, 'x')} | target: at most 1.10x |",
        f"| all rounds pooled ({rounds * probe_count} probes each): quiet / busy | p50 {pct(allq, 0.5):.2f}"
        f" / {pct(allb, 0.5):.2f} ms | p99 {pct(allq, 0.99):.2f} / {pct(allb, 0.99):.2f} ms"
        f" | p95 {pct(allq, 0.95):.2f} / {pct(allb, 0.95):.2f} ms |",
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(lines: int, probe_count: int, rounds: int) -> str:
    fake_proc, fake_url = await start_fake_process()
    work = Path(tempfile.mkdtemp(prefix="tokenomy-bench-batch-"))
    (work / "gw.yaml").write_text(config_text(fake_url, work / "batches"))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tokenomy.cli import main; main()", "serve", "--config", str(work / "gw.yaml"),
        "--port", str(port), "--workers", "1",
        env={**os.environ, "TOKENOMY_HOME": str(work), "PYTHONPATH": str(ROOT / "src")},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    oai = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=2)
    rows: list[str] = []
    try:
        for _ in range(600):
            try:
                await oai.models.list()
                break
            except openai.APIConnectionError:
                await asyncio.sleep(0.05)
        await probes(oai, 20)  # warm-up

        # 1. gateway-run throughput
        uploaded = await oai.files.create(file=("a.jsonl", batch_file(lines, "a")), purpose="batch")
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        batch = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")  # fmt: skip
        while True:
            if (await oai.batches.retrieve(batch.id)).status == "completed":
                break
            await asyncio.sleep(0.05)
        wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        rows.append(f"| gateway-run batch, {lines} chat lines, concurrency 8 | {lines / wall:,.0f} req/s "
                    f"| {cpu / lines * 1000:.2f} ms/req (gateway process) | {wall:.1f} s wall |")  # fmt: skip

        # 2. interactive latency without and with a batch in progress
        rows += await interactive(oai, rounds, probe_count, lines)
    finally:
        proc.terminate()
        await proc.wait()
        fake_proc.terminate()
        await fake_proc.wait()
    fake = await start_openai_fake(api_key=KEY)

    # 3. in-process offline run
    source = work / "offline.jsonl"
    source.write_bytes(batch_file(lines, "o"))
    config = parse_config(config_text(fake.base_url, work / "batches2").replace("server: {shed_loop_lag_ms: 0}", ""))
    config = config.model_copy(update={"ledger": config.ledger.model_copy(update={"enabled": False})})
    c0, t0 = time.process_time(), time.perf_counter()
    summary = await run_offline(config, source, work / "offline.out.jsonl", concurrency=16)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows.append(
        f"| `tokenomy batch run` in process, {summary.completed} lines, concurrency 16 | {lines / wall:,.0f} req/s "
        f"| {cpu / lines * 1000:.2f} ms/req (gateway and fake upstream together) | {wall:.1f} s wall |"
    )
    await fake.close()
    head = (
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; shared with other work while measured (wall-clock rates vary with it, "
        "CPU ms per request much less). Fake upstream answers at once (its own process for the gateway rows, "
        "in the benchmark process for the in-process row); gateway: `serve --workers 1`.\n\n"
        "| what | rate / p50 | CPU / p99 | note |\n|---|---:|---:|---|\n"
    )
    return head + "\n".join(rows) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    report = asyncio.run(main(args.lines, args.probes, args.rounds))
    (HERE / "results.md").write_text(report)
    print(report)
