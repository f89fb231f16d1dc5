"""The router's inputs: the prompt's tail (the text after a known preamble, :mod:`.preamble`), its
MiniLM vector, which preamble it had, and cheap text features of the tail.

The vector is all-MiniLM-L6-v2's unit vector of the tail (for a prompt without a known preamble,
the prompt itself, the vector the semantic cache computes, so the two share it at serving time);
a tail longer than MiniLM's 256 tokens also has its last ~1,000 characters embedded, and the two
vectors are averaged (:func:`embedding_texts`). The cheap features take tens of microseconds
(substring counts and one byte scan, on the first 20k characters): lengths (characters, words
approximated by spaces and newlines, lines), digit / upper-case / non-ASCII / code-punctuation
shares, question marks, lines starting like multiple-choice options (``A)``, ``B.``, …),
few-shot ``Answer:`` markers and code markers.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tokenomy.providers.local.embeddings import EMBEDDING_DIM, MiniLMEmbedder
from tokenomy.providers.local.onnx_threads import Spinning
from tokenomy.routing.learned.preamble import Preambles

FloatArray = npt.NDArray[np.float32]
Embed = Callable[[list[str]], FloatArray]
"""Texts to a ``(len(texts), dim)`` float32 array of unit vectors."""

CHEAP_FEATURES = (
    "log_chars",
    "log_words",
    "log_lines",
    "digit_share",
    "upper_share",
    "non_ascii_share",
    "code_punct_share",
    "log_question_marks",
    "log_option_lines",
    "log_answer_markers",
    "code_markers",
)
_SCAN_CHARS = 20_000  # the shares are measured on the first 20k characters
_CODE = ("```", "def ", "return ", "function ", "#include", "class ", ";\n", "=>", "():")
# byte classes: 1 digit, 2 upper-case letter, 3 non-ASCII, 4 code punctuation
_CLASS = np.zeros(256, dtype=np.intp)
_CLASS[48:58] = 1
_CLASS[65:91] = 2
_CLASS[128:] = 3
_CLASS[list(b"{}()[];=<>_")] = 4
_OPTION_LETTER = np.zeros(256, dtype=bool)
_OPTION_LETTER[list(b"ABCD")] = True
_OPTION_MARK = np.zeros(256, dtype=bool)
_OPTION_MARK[list(b").:")] = True


def cheap_features(text: str) -> FloatArray:
    """The :data:`CHEAP_FEATURES` of one prompt."""
    head = text[:_SCAN_CHARS]
    raw = np.frombuffer(head.encode("utf-8", "replace"), dtype=np.uint8)
    n = max(len(raw), 1)
    classes = np.bincount(_CLASS[raw], minlength=5)
    starts = np.flatnonzero(raw[:-2] == 10) + 1  # first byte of each line but the first
    options = np.count_nonzero(_OPTION_LETTER[raw[starts]] & _OPTION_MARK[raw[starts + 1]])
    return np.array(
        [
            math.log1p(len(text)),
            math.log1p(head.count(" ") + len(starts)),
            math.log1p(len(starts)),
            classes[1] / n,
            classes[2] / n,
            classes[3] / n,
            classes[4] / n,
            math.log1p(head.count("?")),
            math.log1p(options),
            math.log1p(head.count("Answer:")),
            1.0 if any(marker in head for marker in _CODE) else 0.0,
        ],
        dtype=np.float32,
    )


LONG_TAIL_CHARS = 1200
"""A tail longer than this (about MiniLM's 256 tokens) is also embedded by its last window."""
WINDOW_CHARS = 1000


def embedding_texts(tail: str) -> list[str]:
    """What to embed for a prompt's tail: the tail itself (MiniLM reads its first 256 tokens) and, when
    it is longer than that, its last ~1,000 characters too (where a question after a long context is)."""
    if len(tail) <= LONG_TAIL_CHARS:
        return [tail]
    window = tail[-WINDOW_CHARS:]
    space = window.find(" ")
    return [tail, window[space + 1 :] if 0 <= space < 100 else window]


def pool(vectors: npt.NDArray[np.floating[Any]]) -> FloatArray:
    """Mean of a prompt's window vectors, renormalised to unit length."""
    mean = np.asarray(vectors, dtype=np.float32).reshape(-1, EMBEDDING_DIM).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    out: FloatArray = mean / norm if norm > 0 else mean
    return out


def embed_tails(embed: Embed, tails: Sequence[str]) -> FloatArray:
    """One pooled unit vector per tail (see :func:`embedding_texts`)."""
    windows = [embedding_texts(t) for t in tails]
    flat = [w for ws in windows for w in ws]
    vectors = embed(flat) if flat else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    out = np.zeros((len(tails), EMBEDDING_DIM), dtype=np.float32)
    at = 0
    for i, ws in enumerate(windows):
        out[i] = pool(vectors[at : at + len(ws)])
        at += len(ws)
    return out


def minilm_embed(
    batch_size: int = 32, arithmetic: Literal["float32", "int8"] = "float32", spin: Spinning = "in-run"
) -> Embed:
    """An :data:`Embed` over the embedded all-MiniLM-L6-v2 (created and loaded on first use, so a caller
    whose texts are all in a cache never needs the model; callable from threads). ``arithmetic``:
    the embedder's (``int8``: see ``local.embeddings.arithmetic``; the request path computes in float32).

    Its ONNX threads spin only within a run by default (``spin``, ``server.onnx_spinning`` in a
    gateway): this embedder serves the request path
    (the semantic cache's lookups, the learned router), one short text at a time, beside the event
    loop. Threads that kept spinning after a run gave the same lookup p50 at a million semantic
    entries on 2 cores as sleeping ones but about twice the CPU per lookup and a worse p99; spinning
    only within a run took a lookup from 12.0 to 9.3-9.7 ms p50 for about the same CPU
    (docs/benchmarks.md, "Spinning within a run")."""
    holder: list[MiniLMEmbedder] = []
    lock = threading.Lock()

    def embed(texts: list[str]) -> FloatArray:
        if not holder or not holder[0].loaded:
            with lock:  # thread-safe: one load even when the first calls race
                if not holder:
                    holder.append(MiniLMEmbedder(spin=spin, arithmetic=arithmetic))
                if not holder[0].loaded:
                    holder[0].load()
        embedder = holder[0]
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = embedder.embed(list(texts[start : start + batch_size]))
            for row, item in enumerate(chunk):
                out[start + row] = item.vector
        return out

    return embed


def cached_embed(embed: Embed, path: str | Path) -> Embed:
    """Wrap ``embed`` with an ``.npz`` file of vectors keyed by the SHA-1 of each text (bench re-runs)."""
    path = Path(path)

    def run(texts: list[str]) -> FloatArray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        known: dict[str, FloatArray] = {}
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
        if todo:
            fresh = embed([t for _, t in todo])
            known.update({k: fresh[i] for i, (k, _) in enumerate(todo)})
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                np.savez(out, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
        return np.stack([known[k] for k in keys]).astype(np.float32)

    return run


def prompt_features(
    preambles: Preambles, embed: Embed, texts: Sequence[str]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """``(pooled tail vectors, preamble groups, cheap features of the tails)`` for a batch of prompts."""
    split = [preambles.split(t) for t in texts]
    tails = [tail for _, tail in split]
    emb = embed_tails(embed, tails).astype(np.float64)
    group = np.array([g for g, _ in split], dtype=np.intp)
    cheap = (
        np.stack([cheap_features(t) for t in tails]).astype(np.float64) if tails else np.zeros((0, len(CHEAP_FEATURES)))
    )
    return emb, group, cheap
