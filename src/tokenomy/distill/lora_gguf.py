"""Write a PEFT LoRA adapter as a GGUF LoRA adapter that llama.cpp applies to the base model at load time.

The layout is the one llama.cpp's ``convert_lora_to_gguf.py`` writes: ``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha``, and for every adapted weight two tensors
``blk.N.<tensor>.weight.lora_a`` (rank x inputs) and ``.lora_b`` (outputs x rank). llama.cpp
scales the product by ``alpha / rank``, as PEFT does. Llama-family GGUF files store the query and
key projections with their rows permuted for llama.cpp's rotary embedding (transformers undoes
this when it reads a GGUF file), so those adapters' ``lora_b`` rows get the same permutation.
Needs the ``gguf`` package (training only; llama.cpp reads the file).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ARCH = "llama"


def permute_rows(weights: npt.NDArray[Any], n_head: int) -> npt.NDArray[Any]:
    """convert_hf_to_gguf's ``LlamaModel.permute`` on the output rows (the first axis)."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def write_adapter(
    path: Path,
    pairs: Mapping[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]],
    *,
    alpha: float,
    n_layers: int,
    n_head: int,
    n_head_kv: int,
    name: str,
) -> None:
    """Write ``pairs`` (a transformers module name such as ``model.layers.0.self_attn.q_proj`` to its
    ``(A, B)`` matrices, A: rank x inputs, B: outputs x rank) as a GGUF LoRA adapter at ``path``."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    writer.add_name(name)
    for module, (a, b) in sorted(pairs.items()):
        target = names.get_name(module)
        if target is None:
            raise ValueError(f"no llama.cpp tensor for {module!r}")
        if module.endswith("q_proj"):
            b = permute_rows(b, n_head)
        elif module.endswith("k_proj"):
            b = permute_rows(b, n_head_kv)
        writer.add_tensor(f"{target}.weight.lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(f"{target}.weight.lora_b", np.ascontiguousarray(b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
