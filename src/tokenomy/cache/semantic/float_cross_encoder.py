"""The shipped cross-encoder computed in float32, for CPUs whose int8 matmuls are slow.

The shipped file stores its MatMul weights as ONNX Runtime ``MatMulNBits`` (8 bits, symmetric,
blocks of 32) and computes them with int8 arithmetic (``accuracy_level`` 4). That is fast where
the CPU has VNNI dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX), and slower than float32
where it has only AVX2: on an AMD EPYC without VNNI a pair took 8.0 ms p50 this way and 5.8 ms in
float32 (docs/semantic-cache-measurements.md). This variant replaces each ``MatMulNBits`` by a ``MatMul`` over
the *same* weights, dequantized exactly (``(q - 128) * scale``), so only the activations are no
longer rounded to int8: on the 3,048 Medical Question Pairs the verifier's decision moved by 0.008
on average and one decision in 3,048 changed.

Made once (about a second) in the models directory, keyed by the source file and the ONNX version,
like the embedder's int8 variant (``providers/local/int8_embedder.py``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import onnx

from tokenomy.providers.local.cpus import fast_int8

log = logging.getLogger("tokenomy.cache")

Arithmetic = Literal["auto", "int8", "float32"]


def resolve(arithmetic: Arithmetic, cpuinfo: Path = Path("/proc/cpuinfo")) -> Literal["int8", "float32"]:
    """``auto``: float32 on an x86 CPU that lists its flags and has none of
    :data:`~tokenomy.providers.local.cpus.INT8_FLAGS`, else int8."""
    if arithmetic != "auto":
        return arithmetic
    # not Linux, no access, or not an x86 CPU we measured (None): keep the shipped arithmetic
    return "float32" if fast_int8(cpuinfo) is False else "int8"


def float32_model(source: Path, directory: Path) -> Path:
    """The float32-arithmetic variant of ``source`` in ``directory`` (made now if missing)."""
    import onnx

    from tokenomy.providers.local.variants import made_once

    stat = source.stat()
    key = f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{onnx.__version__}"
    path = directory / f"{source.stem}-float32-{hashlib.sha256(key.encode()).hexdigest()[:12]}.onnx"
    if path.is_file():
        return path
    made_once(path, lambda partial: onnx.save(_dequantized(onnx.load(str(source))), str(partial)))
    log.info("made the float32-arithmetic cross-encoder %s", path.name)
    return path


def _dequantized(model: onnx.ModelProto) -> onnx.ModelProto:
    import numpy as np
    from onnx import helper, numpy_helper

    weights = {i.name: i for i in model.graph.initializer}
    used: set[str] = set()
    nodes = []
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("bits") != 8 or len(node.input) != 3:  # symmetric 8-bit only: what the shipped file has
            raise ValueError(f"{node.name}: not an 8-bit symmetric MatMulNBits")
        k, n = int(attrs["K"]), int(attrs["N"])
        q = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)  # [N, blocks, block size]
        scale = numpy_helper.to_array(weights[node.input[2]]).astype(np.float32).reshape(n, -1)
        w = ((q - 128.0) * scale[:, :, None]).reshape(n, -1)[:, :k]
        name = f"{node.input[1]}_float32"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T), name))
        used |= {node.input[1], node.input[2]}
        nodes.append(helper.make_node("MatMul", [node.input[0], name], list(node.output), name=f"{node.name}_float32"))
    kept = [i for i in model.graph.initializer if i.name not in used]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model
