"""Choose the compressor's smoothing and minimum-content settings by 5-fold cross-validation over meetings.

For each fold, the setting with the best mean survival (4x and 10x) on the other meetings is
chosen and scored on the held-out meetings; the printed figure is the held-out survival, never
the one a setting was chosen on. Run: ``python bench/optimize/qmsum_cv.py``.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from qmsum_metric import Case, cases, survival

from tokenomy.optimize.compressor import compress

GRID = [{"tau": t, "min_words": m} for t, m in itertools.product((1.5, 3.0, 6.0), (1, 2, 3))]
RATIOS = (4.0, 10.0)
FOLDS = 5


def score(group: list[Case], results: dict[tuple[int, float, int], tuple[int, int]], setting: int) -> float:
    means = []
    for ratio in RATIOS:
        kept = sum(results[(id(c), ratio, setting)][0] for c in group)
        counted = sum(results[(id(c), ratio, setting)][1] for c in group)
        means.append(kept / max(counted, 1))
    return sum(means) / len(means)


def main() -> None:
    all_cases = list(cases())
    results: dict[tuple[int, float, int], tuple[int, int]] = {}
    for s, setting in enumerate(GRID):
        for c in all_cases:
            for ratio in RATIOS:
                out = compress(c.context, c.query, ratio, "condensed", **setting)  # type: ignore[arg-type]
                results[(id(c), ratio, s)] = survival(c, out.text)
        print(f"setting {setting}: mean survival {score(all_cases, results, s):.3f} (all meetings)", flush=True)
    held: dict[float, list[int]] = {r: [0, 0] for r in RATIOS}
    for fold in range(FOLDS):
        train = [c for c in all_cases if c.meeting % FOLDS != fold]
        test = [c for c in all_cases if c.meeting % FOLDS == fold]
        best = max(range(len(GRID)), key=lambda s: score(train, results, s))
        print(f"fold {fold}: chose {GRID[best]}")
        for ratio in RATIOS:
            held[ratio][0] += sum(results[(id(c), ratio, best)][0] for c in test)
            held[ratio][1] += sum(results[(id(c), ratio, best)][1] for c in test)
    for ratio in RATIOS:
        kept, counted = held[ratio]
        print(f"held-out survival at {ratio:g}x: {kept / counted:.3f} ({kept}/{counted} gold utterances)")


if __name__ == "__main__":
    main()
