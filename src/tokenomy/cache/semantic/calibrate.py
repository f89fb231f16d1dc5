"""Calibration of the similarity threshold on labelled question pairs.

Input: pairs ``(sentence1, sentence2, label)`` with label 1 = same question, 0 = different — a CSV
with those header columns, or an STS-B file (tab-separated, no header: genre, file, year, id,
score, sentence1, sentence2), whose score ≥ ``positive_min`` counts as 1, ≤ ``negative_max``
as 0, and anything between is dropped. Each pair is embedded, and a pair is *accepted* at a
threshold when its cosine similarity reaches it and (with ``verify="entities"``) the second check
passes — exactly what a lookup does.

The recommended threshold is the lowest at which precision ≥ the target there and at every
higher threshold with accepted pairs. With ``recall_slack`` > 0 it is then raised as far as recall
stays ≥ (1 - slack) of that: a safety margin bought with a bounded share of the hits.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic.verify import same_question

InputFormat = Literal["auto", "csv", "stsb"]


@dataclass(frozen=True, slots=True)
class Pair:
    """Two questions and whether they are the same question."""

    a: str
    b: str
    label: int


@dataclass(frozen=True, slots=True)
class Point:
    """Precision and recall at one threshold."""

    threshold: float
    accepted: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float


def _detect(path: Path) -> Literal["csv", "stsb"]:
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
    return "csv" if "sentence1" in first and "label" in first else "stsb"


def load_pairs(
    path: Path, fmt: InputFormat = "auto", positive_min: float = 4.0, negative_max: float = 2.0
) -> list[Pair]:
    """Labelled pairs from a CSV (sentence1, sentence2, label) or an STS-B file."""
    kind = _detect(path) if fmt == "auto" else fmt
    pairs: list[Pair] = []
    with open(path, encoding="utf-8", newline="") as f:
        if kind == "csv":
            for row in csv.DictReader(f):
                pairs.append(Pair(row["sentence1"], row["sentence2"], int(float(row["label"]))))
            return pairs
        for line in f:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 7:
                continue
            score = float(fields[4])
            if score >= positive_min:
                pairs.append(Pair(fields[5], fields[6], 1))
            elif score <= negative_max:
                pairs.append(Pair(fields[5], fields[6], 0))
    return pairs


def similarities(
    embed: Callable[[list[str]], npt.NDArray[np.float32]], pairs: Sequence[Pair], batch: int = 64
) -> npt.NDArray[np.float32]:
    """The cosine similarity of each pair (``embed`` returns unit vectors)."""
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    rows = [embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    vectors = np.concatenate(rows) if rows else np.zeros((0, 1), dtype=np.float32)
    where = {t: i for i, t in enumerate(texts)}
    a = vectors[[where[p.a] for p in pairs]]
    b = vectors[[where[p.b] for p in pairs]]
    sims: npt.NDArray[np.float32] = np.einsum("ij,ij->i", a, b).astype(np.float32)
    return sims


def thresholds(low: float = 0.5, high: float = 0.99, step: float = 0.01) -> list[float]:
    """The grid of thresholds, inclusive."""
    count = round((high - low) / step) + 1
    return [round(low + i * step, 4) for i in range(count)]


def curve(pairs: Sequence[Pair], sims: npt.NDArray[np.float32], verify: bool, grid: Sequence[float]) -> list[Point]:
    """Precision/recall at each threshold of ``grid``."""
    labels = np.array([p.label for p in pairs], dtype=bool)
    checked = np.array([(not verify) or same_question(p.a, p.b) for p in pairs], dtype=bool)
    positives = int(labels.sum())
    points: list[Point] = []
    for t in grid:
        accepted = (sims >= t) & checked
        tp = int((accepted & labels).sum())
        fp = int((accepted & ~labels).sum())
        total = tp + fp
        points.append(
            Point(t, total, tp, fp, positives - tp, tp / total if total else None, tp / positives if positives else 0.0)
        )
    return points


def recommend(points: Sequence[Point], target: float, recall_slack: float = 0.0) -> Point | None:
    """The recommended point (see the module docstring), or ``None`` when no threshold meets the target."""
    best: Point | None = None
    for point in reversed(points):  # from the highest threshold down
        if point.precision is None:
            continue
        if point.precision < target:
            break
        best = point
    if best is None or recall_slack <= 0:
        return best
    floor = (1.0 - recall_slack) * best.recall
    raised = [p for p in points if p.threshold >= best.threshold and p.recall >= floor - 1e-12]
    return max(raised, key=lambda p: p.threshold)


def precision_lower_bound(point: Point, z: float = 1.96) -> float | None:
    """The 95% Wilson lower bound of ``point``'s precision (how low it may really be, given its sample)."""
    n = point.accepted
    if n == 0 or point.precision is None:
        return None
    p = float(point.precision)
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return float((centre - spread) / (1 + z * z / n))


def sample_warning(pairs: Sequence[Pair], chosen: Point | None, target: float) -> str | None:
    """A warning when the recommendation rests on too few pairs to hold the target precision."""
    if chosen is None:
        return None
    low = precision_lower_bound(chosen)
    if low is None or low >= target:
        return None
    return (
        f"the recommended threshold rests on {chosen.accepted} accepted pair(s) of {len(pairs)}: its precision could "
        f"be as low as {low:.2f} (95% lower bound) against a target of {target}; label more pairs before using it"
    )


def report(
    pairs: Sequence[Pair], points: Sequence[Point], chosen: Point | None, target: float, verify: str, slack: float
) -> dict[str, Any]:
    """The JSON document of ``tokenomy cache calibrate --format json``."""
    positives = sum(p.label for p in pairs)
    return {
        "model": "all-MiniLM-L6-v2",
        "verify": verify,
        "pairs": len(pairs),
        "positives": positives,
        "negatives": len(pairs) - positives,
        "target_precision": target,
        "recall_slack": slack,
        "recommended": asdict(chosen) if chosen is not None else None,
        "warning": sample_warning(pairs, chosen, target),
        "thresholds": [asdict(p) for p in points],
    }
