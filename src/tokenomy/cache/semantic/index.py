"""The vector index of the semantic tier: usearch HNSW plus the entries' context, key and text.

- **Vectors** are unit length (the embedder normalises them), stored as float16 in a usearch
  HNSW graph with the inner-product metric, so ``similarity = 1 - distance`` is the cosine.
- **Entries** live in a ring of ``capacity`` slots: label ``n`` (1, 2, ...) sits in slot
  ``(n - 1) % capacity``, so adding entry ``n`` evicts entry ``n - capacity``, the oldest.
  Per slot: the label, the 16-byte context fingerprint, the 20-byte exact-tier key and the text.
- **Context counts**: a table of counters hashed by context lets :meth:`VectorIndex.has_context`
  say "certainly no entry" without embedding or searching (most follow-ups in new conversations).
- **Persistence**: :meth:`save` writes ``<file>`` (usearch) and ``<file>.meta.npz`` (numpy, no
  pickle) to temporary files and renames them into place; :meth:`load` checks that the two belong
  together and starts empty otherwise. Between saves every add and removal is appended to
  ``<file>.log`` (flushed to the OS at once, so a crash of the process loses nothing; fsynced at
  each save) and replayed by :meth:`load`; a save empties it. A torn last record is ignored. The
  graph is loaded into memory: usearch's memory-mapped ``view`` is read-only.
- **Threads**: searches and saves take a shared lock, adds and removals an exclusive one, so any
  number of threads may call in; the matcher runs them on one worker thread, off the event loop.

usearch links its own C++ runtime statically; importing it *before* onnxruntime crashes
onnxruntime's import (a clash of ``std::codecvt`` symbols), so this module imports onnxruntime
first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import onnxruntime  # noqa: F401  # must be loaded before usearch (see the module docstring)
from usearch.index import Index

from tokenomy.cache.semantic.context_blocks import SCAN_LIMIT, ContextBlocks
from tokenomy.cache.semantic.rwlock import RWLock

log = logging.getLogger("tokenomy.cache")

FORMAT = 1
CONNECTIVITY = 16
EXPANSION_ADD = 64
EXPANSION_SEARCH = 128
EXPANSION_WIDE = 1024
"""``expansion_search`` of a second search when the first found nothing above the threshold in a large context
without a block to scan (only with :data:`BLOCK_SEARCH` off; docs/semantic-cache-measurements.md, "ANN recall")."""
KEY_BYTES = 20
_ADD = struct.Struct("<cQQQ20sI")  # b"A", label, context (2 x u64), key, text bytes; then vector f16, text
_REMOVE = struct.Struct("<c20s")  # b"R", key
EXACT_SCAN = 4096
"""A context with at most this many entries is compared exactly when the graph search finds nothing
of it (crowded out, or missed); a larger one keeps its vectors in a contiguous block
(:mod:`~tokenomy.cache.semantic.context_blocks`) that is scanned exactly instead."""
BLOCK_SEARCH = True
"""Search a large context's block when the graph finds nothing of it (off: one wider graph search
instead, the earlier behaviour; ``bench/cache/ann_recall.py`` compares the two)."""
SIGN_BITS_FIRST = True
"""A context whose block is past the scan limit is searched by its sign bits at once, without the graph
search first (off: the graph first, as until 2026-12-06; ``bench/cache/large_context.py`` compares)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored entry near a query, in the query's context."""

    label: int
    similarity: float
    key: str
    text: str


def context_id(context: str) -> tuple[int, int]:
    """The 16-byte fingerprint of a context string, as two integers."""
    digest = hashlib.blake2b(context.encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def key_bytes(key: str) -> bytes:
    """The 20 bytes of an exact-tier key given as 40 hex digits (``ValueError`` otherwise)."""
    try:
        raw = bytes.fromhex(key)
    except ValueError:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a semantic entry's key must be {2 * KEY_BYTES} hex digits (the exact-tier key)")
    return raw


def _new_graph(ndim: int) -> Index:
    return Index(
        ndim=ndim, metric="ip", dtype="f16", connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH,
    )  # fmt: skip


class VectorIndex:
    """Vectors and their entries; see the module docstring. All methods are blocking."""

    remote = False
    """In this process's memory (:meth:`has_context` is cheap enough for the event loop)."""

    def __init__(self, capacity: int, ndim: int, scan_limit: int = SCAN_LIMIT) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.ndim = ndim
        self._graph = _new_graph(ndim)
        self._labels = np.zeros(capacity, dtype=np.uint64)
        self._contexts = np.zeros((capacity, 2), dtype=np.uint64)
        self._keys = np.zeros((capacity, KEY_BYTES), dtype=np.uint8)
        self._texts: list[str | None] = [None] * capacity
        self._blocks = ContextBlocks(capacity, ndim, scan_limit)
        self._buckets = 1 << max(10, min(24, (4 * capacity - 1).bit_length()))
        self._counts = np.zeros(self._buckets, dtype=np.uint32)
        self._next = 1
        self._lock = RWLock()
        self._log: BinaryIO | None = None
        self.dirty = False

    def __len__(self) -> int:
        return len(self._graph)

    # -- reads ---------------------------------------------------------------------------------

    def has_context(self, context: tuple[int, int]) -> bool:
        """False when no entry has this context (true may be a hash collision)."""
        return bool(self._counts[context[0] & (self._buckets - 1)])

    def stored(self, vector: npt.NDArray[np.float32], context: tuple[int, int], key: str, text: str) -> bool:
        """Whether ``text`` is already stored under ``key`` in ``context`` (a quick graph search)."""
        return any(c.key == key and c.text == text for c in self.search(vector, context, 0.999, k=4, max_k=4))

    def search(
        self, vector: npt.NDArray[np.float32], context: tuple[int, int], threshold: float, k: int = 32,
        max_k: int = 2048,
    ) -> list[Candidate]:  # fmt: skip
        """Entries of ``context`` with similarity ≥ ``threshold``, best first.

        Searches the ``k`` nearest entries of any context. When none of them reaches the threshold,
        the graph search may have missed the query's region (HNSW is approximate; at a million
        entries it does so often): a context of at most :data:`EXACT_SCAN` entries is then compared
        exactly, a larger one's contiguous block scanned (exactly up to the index's ``scan_limit``
        entries, beyond by sign bits first). When none is of this context but
        the ``k``-th is still above the threshold, entries of other contexts may crowd this one's
        out (the same question asked by many tenants): then the context's own entries are compared
        exactly the same way. A context past the scan limit is searched by sign bits at once (the graph
        search found the exact best entry for a third of the queries there, and the sign bits find it
        anyway). ``max_k == k`` (a quick duplicate check) does none of this.
        (Without a block, or with :data:`BLOCK_SEARCH` off: one more graph search with
        ``expansion_search`` :data:`EXPANSION_WIDE`, or ``k`` growing eightfold up to ``max_k``.)
        """
        query = np.asarray(vector, dtype=np.float32)
        wide = False
        while True:
            with self._wide() if wide else self._lock.read():
                size = len(self._graph)
                if not size:
                    return []
                if SIGN_BITS_FIRST and k < max_k and self._blocks.two_stage(context):  # the graph: a detour
                    return self._filter(*self._blocks.search(context, query, k), context, threshold)
                matches = self._graph.search(query, min(k, size))
                keys = np.asarray(matches.keys, dtype=np.uint64)
                sims = 1.0 - np.asarray(matches.distances, dtype=np.float32)
                found = self._filter(keys, sims, context, threshold)
                if found or not len(keys):
                    return found
                if sims[-1] < threshold:  # nothing of any context reached it: none, or the graph search missed
                    if k >= max_k or k >= size:
                        return found
                    if BLOCK_SEARCH and context in self._blocks:  # a large context: scan its block
                        return self._filter(*self._blocks.search(context, query, k), context, threshold)
                    if self._counts[context[0] & (self._buckets - 1)] <= EXACT_SCAN:  # a small context: be sure
                        return self._exact(query, self._slots_of(context), context, threshold)
                    if wide or EXPANSION_WIDE <= EXPANSION_SEARCH:
                        return found
                    wide = True
                    continue
                if BLOCK_SEARCH and k < max_k and context in self._blocks:  # crowded: others fill the k nearest
                    return self._filter(*self._blocks.search(context, query, k), context, threshold)
                slots = self._slots_of(context)
                if len(slots) <= EXACT_SCAN:
                    return self._exact(query, slots, context, threshold)
                if k >= max_k or k >= size:
                    return found
                k *= 8

    @contextmanager
    def _wide(self) -> Iterator[None]:
        """Exclusive use of the graph with ``expansion_search`` :data:`EXPANSION_WIDE` (a setting of the
        whole graph, so no other search may run meanwhile)."""
        with self._lock.write():
            self._graph.expansion_search = EXPANSION_WIDE  # type: ignore[misc]  # settable
            try:
                yield
            finally:
                self._graph.expansion_search = EXPANSION_SEARCH  # type: ignore[misc]

    def _slots_of(self, context: tuple[int, int]) -> npt.NDArray[np.int64]:
        same = (self._contexts[:, 0] == np.uint64(context[0])) & (self._contexts[:, 1] == np.uint64(context[1]))
        return np.flatnonzero(same & (self._labels != 0))

    def _exact(
        self, query: npt.NDArray[np.float32], slots: npt.NDArray[np.int64], context: tuple[int, int], threshold: float
    ) -> list[Candidate]:
        """Exact similarities against the given slots' vectors."""
        if not len(slots):
            return []
        labels = self._labels[slots]
        vectors = np.asarray(self._graph.get(labels), dtype=np.float32).reshape(len(labels), -1)
        sims = (vectors @ query).astype(np.float32)
        order = np.argsort(-sims)
        return self._filter(labels[order], sims[order], context, threshold)

    def _filter(
        self, labels: npt.NDArray[np.uint64], sims: npt.NDArray[np.float32], context: tuple[int, int], threshold: float
    ) -> list[Candidate]:
        keep = sims >= threshold
        labels, sims = labels[keep], sims[keep]
        slots = ((labels - np.uint64(1)) % np.uint64(self.capacity)).astype(np.int64)
        live = self._labels[slots] == labels
        same = (self._contexts[slots, 0] == np.uint64(context[0])) & (self._contexts[slots, 1] == np.uint64(context[1]))
        out: list[Candidate] = []
        for i in np.flatnonzero(live & same):
            slot = int(slots[i])
            text = self._texts[slot]
            if text is not None:
                out.append(Candidate(int(labels[i]), float(sims[i]), self._keys[slot].tobytes().hex(), text))
        return out

    # -- writes --------------------------------------------------------------------------------

    def add(self, vector: npt.NDArray[np.float32], context: tuple[int, int], key: str, text: str) -> int:
        """Store an entry (evicting the oldest when full); its label."""
        raw = key_bytes(key)
        with self._lock.write():
            label = self._next
            slot = (label - 1) % self.capacity
            self._clear(slot)
            self._graph.add(np.uint64(label), np.asarray(vector, dtype=np.float32))
            self._labels[slot] = label
            self._contexts[slot] = context
            self._keys[slot] = np.frombuffer(raw, dtype=np.uint8)
            self._texts[slot] = text
            self._counts[context[0] & (self._buckets - 1)] += 1
            self._into_block(context, np.array([label], dtype=np.uint64), vector)
            self._next = label + 1
            self.dirty = True
            self._append(label, context, raw, vector, text)
            return label

    def add_many(
        self, vectors: npt.NDArray[np.float32], contexts: npt.NDArray[np.uint64], keys: list[str], texts: list[str]
    ) -> None:
        """Bulk :meth:`add` (graph insertion on all cores): ``contexts`` is ``(n, 2)``, as :func:`context_id`."""
        n = len(vectors)
        if n > self.capacity:  # only the newest ``capacity`` would survive
            vectors, contexts, keys, texts = (
                vectors[-self.capacity :],
                contexts[-self.capacity :],
                keys[-self.capacity :],
                texts[-self.capacity :],
            )
            self._next += n - self.capacity
            n = self.capacity
        raw = np.frombuffer(b"".join(key_bytes(k) for k in keys), dtype=np.uint8).reshape(n, KEY_BYTES)
        with self._lock.write():
            labels = np.arange(self._next, self._next + n, dtype=np.uint64)
            slots = ((labels - np.uint64(1)) % np.uint64(self.capacity)).astype(np.int64)
            for slot in slots:
                self._clear(int(slot))
            self._graph.add(labels, np.asarray(vectors, dtype=np.float32), threads=0)
            self._labels[slots] = labels
            self._contexts[slots] = contexts
            self._keys[slots] = raw
            for slot, text in zip(slots.tolist(), texts, strict=True):
                self._texts[slot] = text
            np.add.at(self._counts, (contexts[:, 0] & np.uint64(self._buckets - 1)).astype(np.int64), 1)
            unique, which, counts = np.unique(contexts, axis=0, return_inverse=True, return_counts=True)
            order = np.argsort(np.asarray(which).reshape(-1), kind="stable")
            for (c0, c1), rows in zip(unique.tolist(), np.split(order, np.cumsum(counts)[:-1]), strict=True):
                self._into_block((c0, c1), labels[rows], vectors[rows])
            self._next += n
            self.dirty = True
            for i in range(n):
                self._append(int(labels[i]), (int(contexts[i, 0]), int(contexts[i, 1])), raw[i].tobytes(), vectors[i],
                             texts[i], flush=False)  # fmt: skip
            if self._log is not None:
                self._log.flush()

    def remove(self, key: str) -> int:
        """Forget every entry stored under ``key``; how many there were."""
        raw = np.frombuffer(key_bytes(key), dtype=np.uint8)
        with self._lock.write():
            slots = np.flatnonzero((self._keys == raw).all(axis=1) & (self._labels != 0))
            for slot in slots:
                self._clear(int(slot))
            self.dirty = self.dirty or bool(len(slots))
            if len(slots) and self._log is not None:
                self._log.write(_REMOVE.pack(b"R", raw.tobytes()))
                self._log.flush()
            return len(slots)

    def _append(
        self, label: int, context: tuple[int, int], key: bytes, vector: npt.NDArray[np.float32], text: str,
        *, flush: bool = True,
    ) -> None:  # fmt: skip
        """Log one add (caller holds the write lock)."""
        if self._log is None:
            return
        data = text.encode()
        self._log.write(_ADD.pack(b"A", label, context[0], context[1], key, len(data)))
        self._log.write(np.asarray(vector, dtype=np.float16).tobytes())
        self._log.write(data)
        if flush:
            self._log.flush()

    def open_log(self, path: Path) -> None:
        """Replay ``path`` (adds and removals since the last save) and append to it from now on."""
        replayed, good = 0, 0
        if path.exists():
            with open(path, "rb") as f:
                replayed, good = self._replay(f.read())
            if replayed:
                log.info("semantic index: %d logged changes replayed from %s", replayed, path)
        self._log = open(path, "ab")  # noqa: SIM115  # kept open; closed by close_log
        self._log.truncate(good)  # drop a torn last record, so that new records follow good ones

    def _replay(self, data: bytes) -> tuple[int, int]:
        """Apply logged records; (how many, the end of the last whole record)."""
        width = 2 * self.ndim
        pos = count = 0
        while pos < len(data):
            kind = data[pos : pos + 1]
            if kind == b"R" and pos + _REMOVE.size <= len(data):
                _, key = _REMOVE.unpack_from(data, pos)
                pos += _REMOVE.size
                self.remove(key.hex())
            elif kind == b"A" and pos + _ADD.size <= len(data):
                _, label, c0, c1, key, size = _ADD.unpack_from(data, pos)
                end = pos + _ADD.size + width + size
                if end > len(data):
                    break  # torn last record
                vector = np.frombuffer(data, dtype=np.float16, count=self.ndim, offset=pos + _ADD.size)
                text = data[pos + _ADD.size + width : end].decode(errors="replace")
                pos = end
                if label < self._next:
                    continue  # already in the saved index
                self._next = label
                self.add(vector.astype(np.float32), (c0, c1), key.hex(), text)
            else:
                break
            count += 1
        return count, pos

    def close_log(self) -> None:
        """Stop logging (the log stays for the next :meth:`open_log`)."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def _into_block(
        self, context: tuple[int, int], labels: npt.NDArray[np.uint64], vectors: npt.NDArray[np.float32]
    ) -> None:
        """Keep new entries (already stored) in their context's block; give a context that has grown
        past :data:`EXACT_SCAN` one, from its stored vectors (caller holds the write lock)."""
        if context in self._blocks:
            self._blocks.add(context, labels, vectors)
        elif self._counts[context[0] & (self._buckets - 1)] > EXACT_SCAN:  # maybe large (or a hash collision)
            slots = self._slots_of(context)
            if len(slots) > EXACT_SCAN:
                self._block_from_slots(context, slots)

    def _block_from_slots(self, context: tuple[int, int], slots: npt.NDArray[np.int64]) -> None:
        labels = self._labels[slots]
        for lo in range(0, len(labels), 65536):
            part = labels[lo : lo + 65536]
            vectors = np.asarray(self._graph.get(part), dtype=np.float32).reshape(len(part), -1)
            self._blocks.add(context, part, vectors)

    def _clear(self, slot: int) -> None:
        """Empty a slot (caller holds the write lock)."""
        label = int(self._labels[slot])
        if not label:
            return
        self._blocks.discard((int(self._contexts[slot, 0]), int(self._contexts[slot, 1])), slot)
        self._graph.remove(np.uint64(label))
        bucket = int(self._contexts[slot, 0]) & (self._buckets - 1)
        self._counts[bucket] = max(0, int(self._counts[bucket]) - 1)
        self._labels[slot] = 0
        self._texts[slot] = None

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the graph and the entries atomically (temporary files, then renames)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = Path(f"{path}.meta.npz")
        tmp_graph, tmp_meta = Path(f"{path}.tmp"), Path(f"{meta}.tmp.npz")
        with self._lock.read():
            self._graph.save(str(tmp_graph))
            texts = [(t or "").encode() for t in self._texts]
            offsets = np.zeros(len(texts) + 1, dtype=np.int64)
            np.cumsum([len(t) for t in texts], out=offsets[1:])
            state = {"format": FORMAT, "next": self._next, "size": len(self._graph), "ndim": self.ndim}
            with open(tmp_meta, "wb") as f:
                np.savez(
                    f, state=np.array(json.dumps(state)), labels=self._labels, contexts=self._contexts,
                    keys=self._keys, text_offsets=offsets, text_blob=np.frombuffer(b"".join(texts), dtype=np.uint8),
                )  # fmt: skip
                f.flush()
                os.fsync(f.fileno())
            self.dirty = False
            os.replace(tmp_graph, path)
            os.replace(tmp_meta, meta)
            if self._log is not None:  # everything logged so far is in the saved files now
                self._log.truncate(0)
                self._log.flush()
                os.fsync(self._log.fileno())

    @classmethod
    def load(cls, path: Path, capacity: int, ndim: int, scan_limit: int = SCAN_LIMIT) -> VectorIndex:
        """The saved index at ``path``, or a new empty one (missing, unreadable or mismatched files)."""
        index = cls(capacity, ndim, scan_limit)
        meta = Path(f"{path}.meta.npz")
        if not path.exists() or not meta.exists():
            return index
        try:
            graph = Index.restore(str(path))
            with np.load(meta, allow_pickle=False) as data:
                state = json.loads(str(data["state"]))
                labels, contexts, keys = data["labels"], data["contexts"], data["keys"]
                offsets, blob = data["text_offsets"], data["text_blob"].tobytes()
            if graph is None or state.get("format") != FORMAT or state.get("size") != len(graph):
                raise ValueError("the index and its entries do not belong together")
            if int(state["ndim"]) != ndim or graph.ndim != ndim:
                raise ValueError(f"the index holds {graph.ndim}-dimensional vectors, expected {ndim}")
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("semantic index %s not loaded (%s); starting empty", path, exc)
            return index
        graph.expansion_search = EXPANSION_SEARCH  # type: ignore[misc]  # settable; not kept in the file
        graph.expansion_add = EXPANSION_ADD  # type: ignore[misc]
        index._restore(graph, int(state["next"]), labels, contexts, keys, offsets, blob)
        return index

    def _restore(
        self, graph: Index, next_label: int, labels: npt.NDArray[np.uint64], contexts: npt.NDArray[np.uint64],
        keys: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], blob: bytes,
    ) -> None:  # fmt: skip
        """Adopt saved entries, keeping the newest ``capacity`` (the capacity may have changed)."""
        self._graph = graph
        self._next = max(1, next_label)
        old = np.flatnonzero(labels != 0)
        oldest_kept = self._next - self.capacity
        for slot in old:
            label = int(labels[slot])
            if label < oldest_kept:
                graph.remove(np.uint64(label))
                continue
            new = (label - 1) % self.capacity
            self._labels[new] = label
            self._contexts[new] = contexts[slot]
            self._keys[new] = keys[slot]
            self._texts[new] = blob[offsets[slot] : offsets[slot + 1]].decode()
        if len(old):
            live = self._labels != 0
            np.add.at(self._counts, (self._contexts[live, 0] & np.uint64(self._buckets - 1)).astype(np.int64), 1)
            slots = np.flatnonzero(live)
            unique, which, counts = np.unique(self._contexts[slots], axis=0, return_inverse=True, return_counts=True)
            order = np.argsort(np.asarray(which).reshape(-1), kind="stable")
            for (c0, c1), rows in zip(unique.tolist(), np.split(order, np.cumsum(counts)[:-1]), strict=True):
                if len(rows) > EXACT_SCAN:
                    self._block_from_slots((c0, c1), slots[rows])
