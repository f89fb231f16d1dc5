"""``tokenomy bench`` against this benchmark: the same gateway, model and request, tokens/s from each.

Both sides send the generation request of ``bench/local/generation.py`` (greedy, end-of-sequence
tokens banned, so every run produces exactly ``max_tokens``) to the same ``tokenomy serve``, one
request at a time, in alternation so that machine noise hits both alike:

- this benchmark: the official ``openai`` client, streaming; completion tokens / (send to last chunk);
- ``tokenomy bench --dataset ... --concurrency 1 --num-requests 1 --format json`` in its own process;
  its output-token throughput (tokens / wall time of the level, which here is that one request),
  with its TTFT and TPOT.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.local.generation import EOS_BAN, MESSAGES, GatewayModel

from tokenomy.providers.local.catalog import GENERATION_MODEL

ROOT = Path(__file__).resolve().parents[2]


def _tokenomy_bench(base_url: str, dataset: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tokenomy.cli", "bench", "--base-url", base_url, "--model", GENERATION_MODEL]
    cmd += ["--dataset", str(dataset), "--concurrency", "1", "--num-requests", "1", "--format", "json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT / "src"), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    level: dict[str, Any] = json.loads(done.stdout[: done.stdout.rindex("}") + 1])["levels"][0]
    if level["succeeded"] != 1:
        raise RuntimeError(f"tokenomy bench failed: {level['errors']}")
    return level


def agreement(via: GatewayModel, base_url: str, runs: int, max_tokens: int, workdir: Path) -> dict[str, list[float]]:
    """``runs`` alternations; returns each side's tokens/s and tokenomy bench's TTFT, TPOT and tokens."""
    dataset = workdir / "agreement.jsonl"
    line = {"messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0, "logit_bias": EOS_BAN}
    dataset.write_text(json.dumps(line) + "\n")
    out: dict[str, list[float]] = {"local": [], "bench": [], "ttft": [], "tpot": [], "tokens": []}
    for _ in range(runs):
        out["local"].append(via.stream(max_tokens))
        level = _tokenomy_bench(base_url, dataset)
        out["bench"].append(level["output_token_throughput"])
        out["ttft"].append(level["ttft"]["p50"])
        out["tpot"].append(level["tpot"]["p50"])
        out["tokens"].append(level["output_token_throughput"] * level["duration_s"])
    return out


def agreement_table(result: dict[str, list[float]]) -> list[str]:
    """Markdown: median (min-max) of each side and their ratio."""

    def span(values: list[float], fmt: str = ".1f") -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"

    local, bench = statistics.median(result["local"]), statistics.median(result["bench"])
    return [
        "| measured by | output tok/s, median (min-max) | TTFT p50 ms | TPOT p50 ms | tokens per request |",
        "|---|---:|---:|---:|---:|",
        f"| bench/local (openai client, streaming) | {span(result['local'])} | | | |",
        f"| tokenomy bench (concurrency 1) | {span(result['bench'])} | {span(result['ttft'])} "
        f"| {span(result['tpot'], '.2f')} | {span(result['tokens'], '.0f')} |",
        f"| tokenomy bench / bench/local | {100 * bench / local:.1f}% | | | |",
    ]
