"""Which arithmetic the semantic tier's query embedder computes in (``cache.semantic.embedder_arithmetic``).

The embedder ships as int8 weights that ONNX Runtime computes in float32. Where the CPU has int8
dot-product instructions (VNNI), its int8 variant embeds a short question about 1 ms faster (2.5
against 3.6 ms p50 on an AMD EPYC with VNNI) and changed 1 of 5,893 of the semantic tier's
decisions (``bench/cache/embedder_arithmetic.py``; docs/benchmarks.md). ``auto`` takes it there,
except when a learned router is configured: the router embeds the same prompt first and the semantic
tier reads that vector from the shared embedder's memory, which only works if both use one
arithmetic, and the router's figures were measured with float32 vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tokenomy.providers.local.cpus import fast_int8


def embedder_arithmetic(
    setting: Literal["auto", "int8", "float32"], learned_router: bool, cpuinfo: Path = Path("/proc/cpuinfo")
) -> Literal["int8", "float32"]:
    """The arithmetic for ``setting``: ``auto`` is int8 on a CPU with VNNI and no learned router, else float32."""
    if setting != "auto":
        return setting
    return "int8" if not learned_router and fast_int8(cpuinfo) else "float32"
