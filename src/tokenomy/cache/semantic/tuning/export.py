"""Export of the cross-encoder module: float32 ONNX, then the shipped encoding (weight-only 8-bit).

The shipped encoding: MatMul weights as ONNX Runtime ``MatMulNBits`` (8 bits, symmetric, blocks of
32, int8 arithmetic with per-row activation scales), embedding tables int8 per channel, ~24 MB, and
``batch_independent`` in the metadata: a pair's logit does not depend on its batch, so a lookup
scores all its candidates at once (:mod:`~tokenomy.cache.semantic.cross_encoder`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizers log a line per graph node at INFO and advise pre-processing at WARNING."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def export_float32(model: Any, path: Path) -> None:
    """ONNX (inputs ``input_ids``, ``attention_mask``; output ``logit``; dynamic batch and length)."""
    import torch

    ids = torch.ones((2, 16), dtype=torch.int64)
    args: dict[str, Any] = {
        "input_names": ["input_ids", "attention_mask"],
        "output_names": ["logit"],
        "dynamic_axes": {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "logit": {0: "b"}},
        "opset_version": 17,
    }
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        try:
            torch.onnx.export(model, (ids, torch.ones_like(ids)), str(path), dynamo=False, **args)
        except Exception:  # a torch whose TorchScript exporter is gone: the dynamo exporter
            torch.onnx.export(model, (ids, torch.ones_like(ids)), str(path), dynamo=True, **args)


def export_w8(fp32: Path, path: Path) -> None:
    """The shipped encoding of the float32 file ``fp32``, written to ``path``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    matmuls = path.with_suffix(".matmul.onnx")
    try:
        with _quiet():
            quantizer = MatMulNBitsQuantizer(
                onnx.load(str(fp32)), bits=8, block_size=32, is_symmetric=True, accuracy_level=4
            )
            quantizer.process()
            quantizer.model.save_model_to_file(str(matmuls), use_external_data_format=False)
            quantize_dynamic(
                str(matmuls), str(path), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Gather"]
            )
    finally:
        matmuls.unlink(missing_ok=True)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"batch_independent": "1"})
    onnx.save(model, str(path))


def export(model: Any, path: Path) -> None:
    """The module in the shipped encoding at ``path`` (the float32 file in between is removed)."""
    fp32 = path.with_suffix(".fp32.onnx")
    try:
        export_float32(model, fp32)
        export_w8(fp32, path)
    finally:
        fp32.unlink(missing_ok=True)
        for extra in path.parent.glob(fp32.name + "*"):
            extra.unlink()
