"""Calibration of the semantic tier's acceptance threshold on labelled question pairs.

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

from tokenomy.cache.semantic.features import normalized
from tokenomy.cache.semantic.verify import same_question

InputFormat = Literal["auto", "csv", "stsb"]


@dataclass(frozen=True, slots=True)
class Pair:
    """Two questions and whether they are the same question."""

    a: str
    b: str
    label: int
    group: str = ""
    """Who or what the pair comes from (a writer, a source, a tenant): cross-validation keeps a group
    in one fold, so an estimate says what a new group's pairs would get. "" = none given."""


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
    path: Path,
    fmt: InputFormat = "auto",
    positive_min: float = 4.0,
    negative_max: float = 2.0,
    group_column: str | None = None,
) -> list[Pair]:
    """Labelled pairs from a CSV (sentence1, sentence2, label) or an STS-B file; ``group_column``: a
    CSV column naming each pair's group (:attr:`Pair.group`; ``ValueError`` when there is none)."""
    kind = _detect(path) if fmt == "auto" else fmt
    pairs: list[Pair] = []
    with open(path, encoding="utf-8", newline="") as f:
        if kind == "csv":
            reader = csv.DictReader(f)
            if group_column is not None and group_column not in (reader.fieldnames or []):
                raise ValueError(f"no {group_column} column (it has: {', '.join(reader.fieldnames or [])})")
            for row in reader:
                group = (row[group_column] or "").strip() if group_column is not None else ""
                pairs.append(Pair(row["sentence1"], row["sentence2"], int(float(row["label"])), group))
            return pairs
        if group_column is not None:
            raise ValueError("an STS-B file has no group column: give the pairs as a CSV")
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


def decisions(
    embed: Callable[[list[str]], npt.NDArray[np.float32]], pairs: Sequence[Pair], check: Any
) -> npt.NDArray[np.float64]:
    """The verifier's decision value of each pair, ``sentence2`` asked after ``sentence1`` was stored
    (-inf where a gate fails or the cosine is below the floor); ``check`` is a loaded ``ModelCheck``."""
    sims = similarities(embed, pairs)
    out = np.array([check.decide(p.b, [(p.a, float(c))])[0] for p, c in zip(pairs, sims, strict=True)])
    return out.astype(np.float64)


def small_sample_warning(chosen: Point | None, target: float) -> str | None:
    """A warning when the accepted pairs are too few to certify the target precision at 95 %."""
    from tokenomy.cache.semantic.stats import needed_at, upper_bound

    if chosen is None:
        return None
    bound = upper_bound(chosen.fp, chosen.accepted)
    if bound <= 1.0 - target:
        return None
    head = (f"only {chosen.accepted} accepted pairs ({chosen.fp} false): the false-hit rate may be up to "
            f"{bound:.1%} (95 % upper bound)")  # fmt: skip
    seen = chosen.fp / chosen.accepted if chosen.accepted else 0.0
    needed = needed_at(1.0 - target, seen)
    if needed is None:
        return f"{head}, and the {seen:.2%} seen is not under the {1.0 - target:.2%} asked for"
    at = "with no false one" if chosen.fp == 0 else f"false at the rate seen ({seen:.1%})"
    return f"{head}; certifying {1.0 - target:.1%} needs about {needed} accepted pairs {at} — label more pairs"


def thresholds(low: float = 0.5, high: float = 0.99, step: float = 0.01) -> list[float]:
    """The grid of thresholds, inclusive."""
    count = round((high - low) / step) + 1
    return [round(low + i * step, 4) for i in range(count)]


def curve(pairs: Sequence[Pair], sims: npt.NDArray[Any], verify: bool, grid: Sequence[float]) -> list[Point]:
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


def label_conflicts(pairs: Sequence[Pair]) -> list[Pair]:
    """Pairs labelled different whose two questions are the same text up to case, punctuation and
    contractions. The default matcher accepts such a pair whatever its settings, so each one is a
    false hit at every threshold: they cap the precision a curve can show (public sets have them)."""
    return [p for p in pairs if p.label == 0 and normalized(p.a) == normalized(p.b)]


def conflict_warning(found: Sequence[Pair]) -> str | None:
    """What to tell the user about the :func:`label_conflicts` ``found``, or ``None`` when there are none."""
    if not found:
        return None
    first = found[0]
    return (
        f"{len(found)} pair(s) labelled different are the same text up to case, punctuation and contractions "
        f"(e.g. {first.a!r} / {first.b!r}); the matcher accepts such a pair at any setting, so each is a false hit "
        "at every threshold: check those labels"
    )


def report(
    pairs: Sequence[Pair], points: Sequence[Point], chosen: Point | None, target: float, verify: str, slack: float
) -> dict[str, Any]:
    """The JSON document of ``tokenomy cache calibrate --format json``."""
    positives = sum(p.label for p in pairs)
    conflicts = label_conflicts(pairs)
    from tokenomy.cache.semantic.stats import upper_bound

    return {
        "model": "all-MiniLM-L6-v2" + (" + cross-encoder + verifier" if verify == "model" else ""),
        "verify": verify,
        "setting": "accept" if verify == "model" else "threshold",
        "pairs": len(pairs),
        "positives": positives,
        "negatives": len(pairs) - positives,
        "target_precision": target,
        "recall_slack": slack,
        "recommended": asdict(chosen) if chosen is not None else None,
        "false_hit_rate_upper_95": upper_bound(chosen.fp, chosen.accepted) if chosen is not None else None,
        "warning": small_sample_warning(chosen, target),
        "label_conflicts": len(conflicts),
        "label_warning": conflict_warning(conflicts),
        "thresholds": [asdict(p) for p in points],
    }
