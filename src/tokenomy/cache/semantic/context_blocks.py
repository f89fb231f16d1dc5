"""Contiguous copies of the vectors of large contexts, for exact search within one context.

The HNSW graph of :mod:`~tokenomy.cache.semantic.index` is approximate: at a million entries a
search can miss the query's region altogether, and a context small enough is then compared
exactly from its scattered slots. For a context of many thousand entries that gather is too slow,
so the index keeps, per large context, its vectors in one float16 block (768 bytes per
384-dimensional entry, plus its 8-byte label) and scans the block with usearch's exact search
(SIMD; ~1.5 ms of CPU for 15,600 vectors). Chosen over a separate graph per context by
``bench/cache/ann_recall.py`` (docs/benchmarks.md, "ANN recall"): exact, and no graph to build.

Rows are kept dense: removing a row moves the block's last row into its place. ``rows[slot]`` is
the row of the entry in ``slot`` (-1 when its context has no block). The caller (the index) holds
its write lock for changes and its read lock for searches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime  # noqa: F401  # must be loaded before usearch (see index.py)
from usearch.compiled import MetricKind
from usearch.index import search as exact_search

Context = tuple[int, int]


@dataclass
class _Block:
    vectors: npt.NDArray[np.float16]
    labels: npt.NDArray[np.uint64]
    n: int = 0

    def grow(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.labels):
            return
        size = max(need, 2 * len(self.labels))
        vectors = np.zeros((size, self.vectors.shape[1]), dtype=np.float16)
        labels = np.zeros(size, dtype=np.uint64)
        vectors[: self.n], labels[: self.n] = self.vectors[: self.n], self.labels[: self.n]
        self.vectors, self.labels = vectors, labels


class ContextBlocks:
    """Per large context, its vectors in one contiguous float16 block; see the module docstring."""

    def __init__(self, capacity: int, ndim: int) -> None:
        self.capacity = capacity
        self.ndim = ndim
        self.rows = np.full(capacity, -1, dtype=np.int32)
        self._blocks: dict[Context, _Block] = {}

    def __contains__(self, context: Context) -> bool:
        return context in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def size(self, context: Context) -> int:
        """Entries in the context's block (0 when it has none)."""
        block = self._blocks.get(context)
        return block.n if block else 0

    def nbytes(self) -> int:
        """Memory held by the blocks and the row table."""
        return int(self.rows.nbytes + sum(b.vectors.nbytes + b.labels.nbytes for b in self._blocks.values()))

    def add(self, context: Context, labels: npt.NDArray[np.uint64], vectors: npt.NDArray[np.float32]) -> None:
        """Append entries to the context's block, creating it when there is none."""
        count = len(labels)
        block = self._blocks.get(context)
        if block is None:
            block = _Block(np.zeros((0, self.ndim), dtype=np.float16), np.zeros(0, dtype=np.uint64))
            self._blocks[context] = block
        block.grow(count)
        block.vectors[block.n : block.n + count] = np.asarray(vectors, dtype=np.float32).reshape(count, self.ndim)
        block.labels[block.n : block.n + count] = labels
        slots = ((np.asarray(labels, dtype=np.uint64) - np.uint64(1)) % np.uint64(self.capacity)).astype(np.int64)
        self.rows[slots] = np.arange(block.n, block.n + count, dtype=np.int32)
        block.n += count

    def discard(self, context: Context, slot: int) -> None:
        """Forget the entry in ``slot`` (nothing when its context has no block)."""
        row = int(self.rows[slot])
        if row < 0:
            return
        self.rows[slot] = -1
        block = self._blocks[context]
        last = block.n - 1
        if row != last:
            block.vectors[row] = block.vectors[last]
            block.labels[row] = block.labels[last]
            self.rows[int((int(block.labels[row]) - 1) % self.capacity)] = row
        block.n = last
        if not block.n:
            del self._blocks[context]

    def search(
        self, context: Context, query: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        """The ``k`` most similar entries of the context's block, exactly: (labels, similarities), best first."""
        block = self._blocks.get(context)
        if block is None or not block.n:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
        matches = exact_search(
            block.vectors[: block.n], np.asarray(query, dtype=np.float16), min(k, block.n), MetricKind.IP,
            exact=True, threads=1,
        )  # fmt: skip
        rows = np.asarray(matches.keys, dtype=np.int64)
        return block.labels[rows], (1.0 - np.asarray(matches.distances, dtype=np.float32)).astype(np.float32)
