"""Benchmark of the embedded local backend.

One command: ``.venv/bin/python bench/local/run.py`` (``--quick`` for a short run). It prints a
markdown report and writes it to ``bench/local/results.md``:

1. Generation tokens/s of SmolLM2-135M-Instruct: llama-cpp-python called directly (in this
   process, main thread) versus the same request through the gateway (``tokenomy serve`` in a
   subprocess, called with the official ``openai`` client), streaming and not. Same prompt, greedy
   decoding and the end-of-sequence tokens banned, so every run produces exactly ``max_tokens``.
2. Embeddings/s of all-MiniLM-L6-v2 with micro-batching (``max_batch_size`` 32) versus without
   (``max_batch_size`` 1) at 1, 8, 32 and 64 concurrent clients, with p50/p99 latency: in process
   against ``LocalProvider`` and through the gateway over HTTP; each with the default float32
   arithmetic and with ``local.embeddings.arithmetic: int8`` (one batch at a time on every CPU).
3. The streaming generation of 1. measured again by ``tokenomy bench`` against the same gateway,
   alternating with this benchmark's own measurement (``bench/local/agreement.py``).

``--no-embeddings`` runs 1. and 3. only; ``--embeddings-only`` runs 2. only. Each job is its own
module in ``bench/local/``.

Run it on an otherwise idle machine: the gateway, the model threads and the load generator share
the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.local.agreement import agreement, agreement_table  # noqa: E402
from bench.local.embeddings import Table, embedding_table, gateway_embeddings, inprocess_embeddings, modes  # noqa: E402
from bench.local.gateway import gateway  # noqa: E402
from bench.local.generation import DirectModel, GatewayModel, generation, generation_table  # noqa: E402
from bench.local.quiet import QUIET  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def http_embeddings(args: argparse.Namespace, workdir: Path) -> dict[str, Table]:
    """The embedding modes through one ``tokenomy serve`` each (embedding model only)."""
    print("embeddings through the gateway ...", flush=True)
    with contextlib.ExitStack() as stack:
        urls = {
            mode: stack.enter_context(gateway(f"emb-{i}", args.threads, workdir, generation=False, embeddings=settings))
            for i, (mode, settings) in enumerate(modes(args.threads).items())
        }
        return asyncio.run(gateway_embeddings(urls, args.seconds, args.reps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="generation runs per mode (median reported)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each embedding load step")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each embedding load step")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-gateway", action="store_true", help="skip the runs through `tokenomy serve`")
    parser.add_argument("--quick", action="store_true", help="2 runs, 1 s per load step")
    parser.add_argument("--no-embeddings", action="store_true", help="generation (and tokenomy bench) only")
    parser.add_argument("--embeddings-only", action="store_true", help="the embedding tables only")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds, args.reps = 2, 1.0, 1

    notes: list[str] = []
    local: dict[str, Table] | None = None
    if not args.no_embeddings:
        print("in-process embeddings ...", flush=True)
        local = asyncio.run(inprocess_embeddings(args.seconds, args.reps, args.threads))

    direct: dict[str, list[float]] = {}
    via: dict[str, list[float]] | None = None
    http: dict[str, Table] | None = None
    agreed: dict[str, list[float]] | None = None
    workdir = Path(tempfile.mkdtemp(prefix="tokenomy-bench-"))
    if args.embeddings_only:
        if not args.no_gateway:
            http = http_embeddings(args, workdir)
    else:
        print("generation ...", flush=True)
        model = DirectModel(args.threads)
        if args.no_gateway:
            direct, _ = generation(model, None, args.runs, args.max_tokens)
        else:
            try:
                with gateway("generation", args.threads, workdir) as batched_url:
                    remote = GatewayModel(batched_url)
                    direct, via = generation(model, remote, args.runs, args.max_tokens)
                    print("tokenomy bench against the same gateway ...", flush=True)
                    agreed = agreement(remote, batched_url, args.runs, args.max_tokens, workdir)
                    remote.close()
                if not args.no_embeddings:
                    http = http_embeddings(args, workdir)
            except Exception as exc:  # the gateway is optional: report what ran
                notes.append(f"The gateway runs did not complete: {exc!r} (logs in {workdir}).")
                if not direct:
                    direct, _ = generation(model, None, args.runs, args.max_tokens)
        model.close()
    if not notes:
        shutil.rmtree(workdir, ignore_errors=True)

    report = [
        "# Local backend benchmark",
        "",
        f"Machine: {machine()}. Command: `.venv/bin/python bench/local/run.py"
        f"{' --quick' if args.quick else ''}{' --no-embeddings' if args.no_embeddings else ''}"
        f"{' --embeddings-only' if args.embeddings_only else ''}`; "
        f"{args.threads} threads per model; load average {os.getloadavg()[0]:.1f} at the end.",
        "",
    ]
    if direct:
        report += [
            f"## Generation: SmolLM2-135M-Instruct Q4_1, {args.max_tokens} tokens, greedy (median of {args.runs} "
            "runs, direct and gateway runs interleaved)",
            "",
            *generation_table(direct, via),
            "",
        ]
    if agreed is not None:
        report += [
            f"## The same through `tokenomy bench` ({args.runs} alternating runs, one request each, same gateway)",
            "",
            *agreement_table(agreed),
            "",
        ]
    if local is not None:
        report += [
            f"## Embeddings: all-MiniLM-L6-v2, one sentence per request, in process (LocalProvider.send); "
            f"{args.seconds:g} s per step, median of {args.reps} interleaved repetitions",
            "",
            *embedding_table(local),
            "",
        ]
    if http is not None:
        report += [
            "## Embeddings through the gateway (HTTP, aiohttp load generator on the same machine)",
            "",
            *embedding_table(http),
            "",
        ]
    notes.append(
        f"{QUIET.repeated} measurements were repeated because other programs used more than "
        f"{QUIET.limit:g} of a core meanwhile; {QUIET.disturbed} stayed disturbed after {QUIET.attempts} attempts."
    )
    report += [f"Note: {n}" for n in notes]
    text = "\n".join(report).rstrip() + "\n"
    print()
    print(text)
    args.out.write_text(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
