"""Can all-MiniLM-L6-v2 embed with less CPU without a text's vector depending on its batch? One table.

``.venv/bin/python bench/local/embed_weights.py`` builds variants of the embedded ONNX model in a
temporary folder and compares each with the served one (int8 weights dequantized to float32 at
load, float32 arithmetic):

- ``MatMulNBits`` (ONNX Runtime's weight-only quantization, ``onnxruntime.quantization.
  matmul_nbits_quantizer``, symmetric, blocks of 32 along the input dimension) at 8 and 4 bits.
  ``accuracy_level`` 4 computes in int8: each row's activations are quantized on their own, per
  block, so a text's vector cannot depend on its neighbours; ``accuracy_level`` 0 dequantizes
  the weights and computes in float32.
- ``graph fused``: ONNX Runtime's transformer optimizer (``onnxruntime.transformers.optimizer``,
  BERT fusions: SkipLayerNormalization, BiasGelu; this export's attention does not fuse).

Per variant: process CPU seconds per 1,000 embeddings at batch 1 and batch 32 on one ONNX Runtime
thread (stable on a loaded machine; sentences from STS-B train, mixed lengths, the embedder's
own length grouping), the cosine of each vector to the served model's (mean and minimum over the
sentences), the largest change of a pair's cosine over STS-B train pairs (what the semantic
cache's thresholds were calibrated on) with how many pairs cross its cosine gates (0.60, the
default threshold with the matcher models; 0.90, without them), and the largest difference between a sentence's vector
embedded alone and inside a batch of 32 (0 = independent of its neighbours).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import numpy as np  # noqa: E402

from tokenomy.providers.local.embeddings import MiniLMEmbedder, default_model_path  # noqa: E402

STSB = Path("/work/shared/data/stsb/sts-train.csv")


def pairs(limit: int) -> list[tuple[str, str]]:
    """The first ``limit`` STS-B train pairs (tab-separated; sentences in columns 6 and 7)."""
    out = []
    with STSB.open(encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 7:
                out.append((row[5], row[6]))
            if len(out) == limit:
                break
    return out


def folded(directory: Path) -> Path:
    """The served model with its int8 weights folded to float32 (what ONNX Runtime runs at load)."""
    import onnxruntime as ort

    path = directory / "float32.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(path)
    ort.InferenceSession(str(default_model_path()), options, providers=["CPUExecutionProvider"])
    return path


def nbits(source: Path, directory: Path, bits: int, accuracy: int) -> Path:
    """MatMul weights as MatMulNBits (symmetric, blocks of 32)."""
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(source)), bits=bits, block_size=32, is_symmetric=True, accuracy_level=accuracy
    )
    quantizer.process()
    path = directory / f"nbits{bits}-a{accuracy}.onnx"
    quantizer.model.save_model_to_file(str(path), use_external_data_format=False)
    return path


def fused(source: Path, directory: Path) -> Path:
    """ONNX Runtime's BERT fusions."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    path = directory / "fused.onnx"
    model.save_model_to_file(str(path))
    return path


def cpu_per_1000(embedder: MiniLMEmbedder, sentences: list[str], batch: int) -> float:
    embedder.embed(sentences[:batch])  # warm this shape
    cpu = time.process_time()
    for start in range(0, len(sentences), batch):
        embedder.embed(list(sentences[start : start + batch]))
    return (time.process_time() - cpu) * 1000 / len(sentences)


def vectors(embedder: MiniLMEmbedder, sentences: list[str]) -> np.ndarray:
    return np.stack(
        [e.vector for start in range(0, len(sentences), 32) for e in embedder.embed(sentences[start : start + 32])]
    )


def crossing(before: np.ndarray, after: np.ndarray, gate: float) -> int:
    """Pairs on different sides of ``gate`` before and after."""
    return int(((before >= gate) != (after >= gate)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=500, help="STS-B train pairs (twice as many sentences)")
    parser.add_argument("--timed", type=int, default=512, help="sentences per timed cell")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per cell (median reported)")
    parser.add_argument("--only", action="append", help="only the variants whose name contains this; repeatable")
    args = parser.parse_args()
    chosen = pairs(args.pairs)
    sentences = [s for pair in chosen for s in pair]
    timed = sentences[: args.timed]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base = folded(directory)
        builds: dict[str, Callable[[], Path]] = {
            "served (int8 weights as float32)": default_model_path,
            "MatMulNBits 8-bit, int8 compute (accuracy_level 4)": lambda: nbits(base, directory, 8, 4),
            "MatMulNBits 8-bit, float32 compute (accuracy_level 0)": lambda: nbits(base, directory, 8, 0),
            "MatMulNBits 4-bit, int8 compute (accuracy_level 4)": lambda: nbits(base, directory, 4, 4),
            "graph fused (SkipLayerNorm, BiasGelu)": lambda: fused(base, directory),
        }
        print(
            f"all-MiniLM-L6-v2, one ONNX Runtime thread; {len(sentences)} STS-B train sentences ({len(chosen)} pairs), "
            f"{len(timed)} per timed cell, median of {args.reps}; {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f} at the start."
        )
        print()
        print(
            "| model | MB | CPU s / 1,000 at batch 1 | at batch 32 | batch 1 / 32 | cosine to served: mean | min | "
            "largest pair-cosine change | pairs crossing 0.60 / 0.90 | alone vs in a batch: largest difference |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        reference: np.ndarray | None = None
        for label, build in builds.items():
            if args.only and reference is not None and not any(word in label for word in args.only):
                continue
            path = build()
            embedder = MiniLMEmbedder(path, n_threads=1)
            embedder.load()
            got = vectors(embedder, sentences)
            reference = got if reference is None else reference
            cosine = (got * reference).sum(axis=1)
            half = len(chosen)
            pair_now = (got[0::2] * got[1::2]).sum(axis=1)[:half]
            pair_ref = (reference[0::2] * reference[1::2]).sum(axis=1)[:half]
            alone = np.stack([embedder.embed([s])[0].vector for s in sentences[:32]])
            together = np.stack([e.vector for e in embedder.embed(sentences[:32])])
            cells = []
            for batch in (1, 32):
                runs = sorted(cpu_per_1000(embedder, timed, batch) for _ in range(args.reps))
                cells.append(runs[len(runs) // 2])
            embedder.close()
            print(
                f"| {label} | {path.stat().st_size / 1e6:.1f} | {cells[0]:.2f} | {cells[1]:.2f} | "
                f"{cells[0] / cells[1]:.2f}x | {cosine.mean():.5f} | {cosine.min():.5f} | "
                f"{np.abs(pair_now - pair_ref).max():.5f} | {crossing(pair_ref, pair_now, 0.6)} / "
                f"{crossing(pair_ref, pair_now, 0.9)} of {half} | {np.abs(alone - together).max():.2e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
