"""The settings of ``tokenomy cache tune`` and their defaults, in a module of their own so the CLI
reads its option defaults from them without importing the tuning code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class TuneSettings:
    """Training and validation settings (defaults measured on BANKING77: docs/semantic-cache-measurements.md)."""

    epochs: int = 3
    learning_rate: float = 1e-4
    """3 epochs at 1e-4 against 2 at 2e-5: out of fold, more recall at the same precision on both
    public sets it was compared on (docs/benchmarks.md, "Folds by writer, and the learning rate")."""
    batch_size: int = 32
    warmup: float = 0.1
    folds: int = 5
    target: float = 0.99
    seed: int = 0
    threads: int = 1
    min_accepted: int = 100
    """Write a model only when the threshold rests on at least this many accepted out-of-fold pairs."""
    verifier: Literal["refit", "shipped"] = "refit"
    """``refit``: fit the verifier's regression on the pairs, gate as a feature; ``shipped``: keep its coefficients."""
    max_steps: int | None = None  # stop each training early (tests)
