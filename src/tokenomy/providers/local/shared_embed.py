"""One all-MiniLM-L6-v2 embedder for the whole process, shared by the semantic cache and the
learned router, with a small LRU of recent texts: a prompt the learned router embedded is not
embedded again by the semantic cache lookup that follows (the policy stage runs first).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

from tokenomy.providers.local.onnx_threads import Spinning

FloatArray = npt.NDArray[np.float32]
Arithmetic = Literal["float32", "int8"]
_RECENT = 4096


class SharedEmbedder:
    """Texts to unit vectors; recent texts are answered from memory without a thread hop."""

    def __init__(
        self, compute: Callable[[list[str]], FloatArray] | None = None, arithmetic: Arithmetic = "float32",
        spinning: Spinning = "in-run",
    ) -> None:  # fmt: skip
        self._compute = compute
        self.arithmetic: Arithmetic = arithmetic
        """The model's arithmetic (``local.embeddings.arithmetic``'s meaning), when ``compute`` is not given."""
        self.spinning: Spinning = spinning
        """How its ONNX threads wait (``server.onnx_spinning``), when ``compute`` is not given."""
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, FloatArray] = OrderedDict()
        self.computed = 0  # texts embedded for real (the rest came from the LRU)

    def _model(self) -> Callable[[list[str]], FloatArray]:
        with self._lock:
            if self._compute is None:
                from tokenomy.routing.learned.features import minilm_embed

                self._compute = minilm_embed(arithmetic=self.arithmetic, spin=self.spinning)
            return self._compute

    def embed(self, texts: list[str]) -> FloatArray:
        """Blocking: embed what is not remembered (call from a thread)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._recent]
        if missing:
            vectors = self._model()(missing)
            with self._lock:
                self.computed += len(missing)
                for text, vector in zip(missing, vectors, strict=True):
                    self._recent[text] = vector
                    if len(self._recent) > _RECENT:
                        self._recent.popitem(last=False)
        return np.stack([self._recent[t] for t in texts])

    async def aembed(self, texts: list[str]) -> FloatArray:
        """Embed off the event loop, unless every text is remembered."""
        recent = self._recent
        if all(t in recent for t in texts):
            for t in texts:
                recent.move_to_end(t)
            return np.stack([recent[t] for t in texts])
        return await asyncio.to_thread(self.embed, texts)


_shared: dict[tuple[Arithmetic, Spinning], SharedEmbedder] = {}


def shared_embedder(arithmetic: Arithmetic = "float32", spinning: Spinning = "in-run") -> SharedEmbedder:
    """The process's embedder in that arithmetic whose threads wait that way (created on first use; the
    model loads on the first text). A gateway's semantic tier, learned routers and few-shot selection
    share one (``server.onnx_spinning``), but for a semantic tier that computes in int8
    (``cache.semantic.embedder_arithmetic``)."""
    key = (arithmetic, spinning)
    found = _shared.get(key)
    return found if found is not None else _shared.setdefault(key, SharedEmbedder(None, arithmetic, spinning))
