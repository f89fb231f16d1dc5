"""Shared bits of the learned-router tests: the sample files, a fast fake embedder, CSV writers."""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tokenomy.routing.learned import TrainOptions
from tokenomy.routing.learned.logistic import PENALTIES

DATA = Path(__file__).parent / "data"
ROUTERBENCH = DATA / "routerbench_sample.csv.gz"
MMLU = DATA / "mmlu_sample.csv"
GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
FAST = TrainOptions(
    folds=3, pca_dims=(0, 16), penalties=PENALTIES[1::2], knn_ks=(5, 20), mf_ranks=(4,), mf_penalties=(30.0,)
)
"""Training options that keep the tests' training runs short."""


def fake_embed(texts: list[str]) -> np.ndarray:
    """A deterministic bag-of-hashed-words unit vector (stands in for MiniLM; milliseconds, not seconds)."""
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split()[-120:]:
            out[i, int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % 384] += 1.0
        out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
    return out


def routerbench_rows() -> tuple[list[str], list[dict[str, str]]]:
    """The sample's header and rows, read with nothing but the csv module."""
    with gzip.open(ROUTERBENCH, "rt", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
