"""Contiguous copies of the vectors of large contexts, for exact search within one context.

The HNSW graph of :mod:`~tokenomy.cache.semantic.index` is approximate: at a million entries a
search can miss the query's region altogether, and a context small enough is then compared
exactly from its scattered slots. For a context of many thousand entries that gather is too slow,
so the index keeps, per large context, its vectors in one float16 block (768 bytes per
384-dimensional entry, plus its 8-byte label) and scans the block with usearch's exact search
(SIMD; ~1.5 ms for 15,600 vectors on one thread, ~0.9 ms on the two of :data:`SCAN_THREADS`).
Chosen over a separate graph per context by ``bench/cache/ann_recall.py`` (docs/benchmarks.md,
"ANN recall"): exact, and no graph to build.

A scan reads every vector: for one context of a million entries (an application with one system
prompt) it took 56-98 ms. So a block of more than ``exact_up_to`` entries is searched in two
stages (the index then skips its graph search, :meth:`two_stage`): the :data:`PREFILTER` entries
nearest by Hamming distance between the vectors' sign bits (48 bytes padded to 64 per entry, kept
beside the block; faiss's SIMD ``knn_hamming``, ~2.4 ms for a million), then those exactly. On a
million entries in one context it found the exact best entry for all 306 LangCache questions that
have one above 0.6 (docs/benchmarks.md, "One context of a million entries"); it is approximate
where many entries sit close to the best (``bench/cache/sign_codes.py``).

Rows are kept dense: removing a row moves the block's last row into its place. ``rows[slot]`` is
the row of the entry in ``slot`` (-1 when its context has no block). The caller (the index) holds
its write lock for changes and its read lock for searches.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime  # noqa: F401  # must be loaded before usearch (see index.py)
from usearch.compiled import MetricKind
from usearch.index import search as exact_search

log = logging.getLogger("tokenomy.cache")

Context = tuple[int, int]
SCAN_THREADS = min(2, os.cpu_count() or 1)
"""Threads of an exact scan. The lookup waits for it on the semantic tier's one worker thread, so the
second core would sit idle: on an AMD EPYC a scan of 15,625 vectors took 0.90 ms on two threads and
1.53 ms on one (3.5 against 6.1 ms for 62,500). The result is the same exact top ``k``."""
SCAN_LIMIT = 32_768
"""The most entries a block may hold and still be scanned exactly (``exact_scan_limit``; about 2 ms on
two threads): a larger one is searched by its vectors' sign bits, then the nearest of those exactly."""
PREFILTER = 256
"""Entries a large block's sign-bit search passes on to the exact comparison (at least ``k``)."""
CODE_DIMS: int | None = None
"""The dimensions whose signs make an entry's code: all (None), or the first ``CODE_DIMS``
(``bench/cache/large_context.py --codes`` compares; read when a :class:`ContextBlocks` is made)."""


@functools.cache
def _faiss() -> Any:
    """faiss, loaded on first use (only a block past the limit needs it; after usearch, see index.py),
    on one OpenMP thread: a search is one query, and idle OpenMP threads spin against ONNX Runtime's.
    None, logged once, where it cannot be imported: large blocks are then scanned exactly."""
    try:
        import faiss
    except ImportError as exc:
        log.warning("semantic cache: faiss not usable (%s); contexts past exact_scan_limit are scanned exactly", exc)
        return None
    faiss.omp_set_num_threads(1)
    return faiss


def code_bytes(ndim: int) -> int:
    """Bytes of a vector's sign bits: ``ceil(ndim / 8)`` padded with zero bytes to a size faiss has a
    dedicated Hamming routine for (16, 32 or 64 bytes, else a multiple of 8). Padding leaves every
    distance as it was, and the dedicated routine is faster: a million 384-dimensional entries took
    2.3-2.6 ms in 64 bytes against 3.6-3.7 ms in their 48 (``bench/cache/sign_codes.py``)."""
    raw = (ndim + 7) // 8
    for size in (16, 32, 64):
        if raw <= size:
            return size
    return -(-raw // 8) * 8


def sign_bits(vectors: npt.NDArray[np.float32] | npt.NDArray[np.float16], nbytes: int = 0) -> npt.NDArray[np.uint8]:
    """Each vector's signs, one bit per dimension, packed; rows padded with zero bytes to ``nbytes``."""
    bits = np.packbits(np.asarray(vectors, dtype=np.float32) > 0, axis=-1)
    if nbytes > bits.shape[-1]:
        pad = [(0, 0)] * (bits.ndim - 1) + [(0, nbytes - bits.shape[-1])]
        bits = np.pad(bits, pad)
    return bits


@dataclass
class _Block:
    vectors: npt.NDArray[np.float16]
    labels: npt.NDArray[np.uint64]
    bits: npt.NDArray[np.uint8]
    n: int = 0

    def grow(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.labels):
            return
        size = max(need, 2 * len(self.labels))
        vectors = np.zeros((size, self.vectors.shape[1]), dtype=np.float16)
        labels = np.zeros(size, dtype=np.uint64)
        bits = np.zeros((size, self.bits.shape[1]), dtype=np.uint8)
        vectors[: self.n], labels[: self.n] = self.vectors[: self.n], self.labels[: self.n]
        bits[: self.n] = self.bits[: self.n]
        self.vectors, self.labels, self.bits = vectors, labels, bits


class ContextBlocks:
    """Per large context, its vectors in one contiguous float16 block; see the module docstring."""

    def __init__(self, capacity: int, ndim: int, exact_up_to: int = SCAN_LIMIT) -> None:
        self.capacity = capacity
        self.ndim = ndim
        self.code_dims = CODE_DIMS
        """The dimensions whose signs make a code (None: all)."""
        self.code_bytes = code_bytes(min(ndim, CODE_DIMS or ndim))
        self.exact_up_to = exact_up_to
        """A block of at most this many entries is scanned exactly; a larger one in two stages."""
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
        held = sum(b.vectors.nbytes + b.labels.nbytes + b.bits.nbytes for b in self._blocks.values())
        return int(self.rows.nbytes + held)

    def add(self, context: Context, labels: npt.NDArray[np.uint64], vectors: npt.NDArray[np.float32]) -> None:
        """Append entries to the context's block, creating it when there is none."""
        count = len(labels)
        block = self._blocks.get(context)
        if block is None:
            empty_bits = np.zeros((0, self.code_bytes), dtype=np.uint8)
            block = _Block(np.zeros((0, self.ndim), dtype=np.float16), np.zeros(0, dtype=np.uint64), empty_bits)
            self._blocks[context] = block
        block.grow(count)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(count, self.ndim)
        block.vectors[block.n : block.n + count] = vectors
        block.bits[block.n : block.n + count] = sign_bits(vectors[:, : self.code_dims], self.code_bytes)
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
            block.bits[row] = block.bits[last]
            block.labels[row] = block.labels[last]
            self.rows[int((int(block.labels[row]) - 1) % self.capacity)] = row
        block.n = last
        if not block.n:
            del self._blocks[context]

    def _two_stage_faiss(self, block: _Block) -> Any:
        """faiss when ``block`` is searched in two stages (past the limit, faiss usable), else None."""
        return _faiss() if block.n > self.exact_up_to else None

    def two_stage(self, context: Context) -> bool:
        """Whether the context's block is searched by sign bits first (past the limit, faiss usable)."""
        block = self._blocks.get(context)
        return block is not None and self._two_stage_faiss(block) is not None

    def search(
        self, context: Context, query: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        """The ``k`` most similar entries of the context's block: (labels, similarities), best first.
        Exact up to :attr:`exact_up_to` entries; beyond, the exact best of the :data:`PREFILTER`
        nearest by sign bits."""
        block = self._blocks.get(context)
        if block is None or not block.n:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
        query = np.asarray(query, dtype=np.float32).reshape(self.ndim)
        faiss = self._two_stage_faiss(block)
        if faiss is not None:
            return self._two_stage(faiss, block, query, k)
        matches = exact_search(
            block.vectors[: block.n], query.astype(np.float16), min(k, block.n), MetricKind.IP,
            exact=True, threads=SCAN_THREADS,
        )  # fmt: skip
        rows = np.asarray(matches.keys, dtype=np.int64)
        return block.labels[rows], (1.0 - np.asarray(matches.distances, dtype=np.float32)).astype(np.float32)

    def _two_stage(
        self, faiss: Any, block: _Block, query: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        count = min(max(k, PREFILTER), block.n)
        code = sign_bits(query[: self.code_dims], block.bits.shape[1])
        _, found = faiss.knn_hamming(code[None, :], block.bits[: block.n], count)
        rows = np.asarray(found[0], dtype=np.int64)
        rows = rows[rows >= 0]
        sims = (block.vectors[rows].astype(np.float32) @ query).astype(np.float32)
        best = np.argsort(-sims, kind="stable")[:k]
        return block.labels[rows[best]], sims[best]
