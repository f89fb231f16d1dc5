"""The embedded embedding model with int8 arithmetic (``local.embeddings.arithmetic: int8``), built once.

The shipped all-MiniLM-L6-v2 file stores int8 weights that ONNX Runtime dequantizes at load, so
every run computes in float32. This variant rewrites each MatMul with a constant weight as ONNX
Runtime's ``MatMulNBits`` (8 bits, symmetric, blocks of 32 along the input dimension) at
``accuracy_level`` 4: the weights stay 8-bit and each row's activations are quantized to int8
per block on their own, so a text's vector still does not depend on the other texts of its
batch (unlike ``quantize_dynamic``, whose activation scale spans the whole batch). Measured in
docs/benchmarks.md: cosine 0.9997 on average (0.998 at worst) to the float32 vectors, about a
third less CPU for a lone text, about a tenth less in batches of 32.

The file is made with ONNX Runtime's own tools (graph folding, then
``onnxruntime.quantization.matmul_nbits_quantizer``) in a few seconds at first start and kept in
the models directory, keyed by the source file and the ONNX Runtime version.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from pathlib import Path

from tokenomy.providers.local.variants import made_once

log = logging.getLogger("tokenomy.local")

BITS = 8
BLOCK = 32
ACCURACY_LEVEL = 4  # int8 compute, activations quantized per row and block


def int8_model(source: Path, directory: Path) -> Path:
    """The int8-arithmetic variant of ``source`` in ``directory`` (made now if missing)."""
    import onnxruntime as ort

    stat = source.stat()
    key = f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{ort.__version__}|{BITS}|{BLOCK}|{ACCURACY_LEVEL}"
    path = directory / f"{source.parent.name}-matmul{BITS}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.onnx"
    if path.is_file():
        return path
    started = time.perf_counter()

    def make(partial: Path) -> None:
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            _quantize(_folded(source, Path(tmp) / "float32.onnx"), partial)

    made_once(path, make)
    log.info("made the int8-arithmetic embedding model %s in %.1f s", path.name, time.perf_counter() - started)
    return path


def _folded(source: Path, out: Path) -> Path:
    """``source`` with its dequantization folded into float32 weights, as ONNX Runtime loads it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    options.intra_op_num_threads = 1
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return out


def _quantize(source: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(source)), bits=BITS, block_size=BLOCK, is_symmetric=True, accuracy_level=ACCURACY_LEVEL
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
