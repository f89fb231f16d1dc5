"""What scoring a lookup's candidates costs with each cross-encoder variant: one command, one table.

    PYTHONPATH=src .venv/bin/python bench/cache/cross_encoder_cost.py \
        --float32 build/ce-final/cross-encoder.int8.fp32.onnx [--int8 FILE] [--w8 FILE]

The shipped int8 model (one pair per call, one order: what a lookup does today) against a float32
model (``train_cross_encoder.py --keep-models`` keeps one) read in both orders, either one pair per
call or all of a lookup's candidates in both orders as one batch (safe in float32: it has no
per-batch quantization), and a weight-only 8-bit model (``train_cross_encoder.export_w8``; default:
the shipped one if it is that kind) in one order and in both, as one batch per lookup, as the
semantic tier runs it. For each of ``--questions`` LangCache questions the candidates are
``--candidates`` stored questions (its partner and the next ones in the file), as the semantic tier
verifies its top candidates. Prints the thread CPU time per lookup (p50 / p99 over the questions;
one ONNX thread, as the tier runs it) and the wall time: CPU time holds on a busy machine, wall
time wants a quiet one.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from tokenomy.cache.semantic.cross_encoder import CrossEncoder, encode_pairs

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "langcache_query_pairs" / "pairs.csv"


def _timed(fn: Callable[[list[tuple[str, str]]], object], pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """Thread CPU ms and wall ms of one call."""
    c, w = time.thread_time(), time.perf_counter()
    fn(pairs)
    return 1000 * (time.thread_time() - c), 1000 * (time.perf_counter() - w)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--float32", type=Path, required=True, help="a float32 cross-encoder ONNX file")
    ap.add_argument("--int8", type=Path, help="a dynamically quantized int8 file (default: the shipped model)")
    ap.add_argument("--w8", type=Path, help="a weight-only 8-bit file (default: the shipped model)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--questions", type=int, default=150)
    ap.add_argument("--candidates", type=int, default=3)
    opts = ap.parse_args()
    with opts.data.open() as f:
        rows = list(csv.DictReader(f))
    stored = [r["sentence1"] for r in rows]
    int8, fp32, w8 = CrossEncoder(opts.int8), CrossEncoder(opts.float32), CrossEncoder(opts.w8)
    for model in (int8, fp32, w8):
        model.load()
    if int8.batched or not w8.batched:
        raise SystemExit("--int8 must be a dynamically quantized file and --w8 a weight-only 8-bit one")
    session, tokenizer = fp32._session, fp32._tokenizer

    def fp32_batch(pairs: list[tuple[str, str]]) -> None:
        both = pairs + [(b, a) for a, b in pairs]
        ids, mask = encode_pairs(tokenizer, both)
        session.run(None, {"input_ids": ids, "attention_mask": mask})

    variants: dict[str, Callable[[list[tuple[str, str]]], object]] = {
        "int8, one order, one pair per call (shipped before 2026-12-05)": int8.score,
        "float32, both orders, one pair per call": lambda p: fp32.score(p + [(b, a) for a, b in p]),
        "float32, both orders, one batch per lookup": fp32_batch,
        "weight-only 8-bit, one order, one batch per lookup": w8.score,
        "weight-only 8-bit, both orders, one batch per lookup": lambda p: w8.score(p + [(b, a) for a, b in p]),
    }
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in variants}
    for i, row in enumerate(rows[: opts.questions]):
        pairs = [(row["sentence2"], stored[(i + k) % len(stored)]) for k in range(opts.candidates)]
        for name, fn in variants.items():  # interleaved per question: drift hits every variant alike
            spent, took = _timed(fn, pairs)
            results[name][0].append(spent)
            results[name][1].append(took)
    print(f"{opts.questions} lookups of {opts.candidates} candidates each; one ONNX thread\n")
    print("| variant | CPU ms per lookup p50 / p99 | wall ms p50 / p99 | mean CPU ms |")
    print("|---|---|---|---|")
    for name, (cpu, wall) in results.items():
        print(
            f"| {name} | {_pct(cpu, 0.5):.2f} / {_pct(cpu, 0.99):.2f} | {_pct(wall, 0.5):.2f} / {_pct(wall, 0.99):.2f} "
            f"| {statistics.mean(cpu):.2f} |"
        )


if __name__ == "__main__":
    main()
