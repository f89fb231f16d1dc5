"""Re-quantize a GGUF model with llama.cpp's own quantizer (``llama_model_quantize``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# The types ``tokenomy quantize`` offers, by the names llama.cpp's tools use.
GGUF_TYPES: dict[str, str] = {
    "f32": "LLAMA_FTYPE_ALL_F32",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
}
# Highest precision first: the first type of a run is the reference for agreement.
PRECISION_ORDER = list(GGUF_TYPES)


class QuantizeError(ValueError):
    """A model or type that cannot be quantized, with the reason."""


def check_gguf(path: Path) -> None:
    """Raise :class:`QuantizeError` unless ``path`` is a readable GGUF file."""
    if not path.is_file():
        raise QuantizeError(f"{path}: no such file")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise QuantizeError(f"{path}: not a GGUF model (the file does not start with 'GGUF')")


def quantize_gguf(source: Path, target: Path, type_name: str, *, threads: int = 1) -> Path:
    """Write ``source`` re-quantized to ``type_name`` at ``target`` (atomically); return ``target``."""
    import llama_cpp

    key = type_name.lower()
    if key not in GGUF_TYPES:
        raise QuantizeError(f"unknown quantization type {type_name!r}; known: {', '.join(GGUF_TYPES)}")
    check_gguf(source)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, GGUF_TYPES[key])
    params.allow_requantize = True
    params.nthread = threads
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
        if status != 0 or not partial.is_file():
            raise QuantizeError(
                f"llama.cpp could not quantize {source} to {key} (status {status}); the model may not take this type"
            )
        partial.replace(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target
