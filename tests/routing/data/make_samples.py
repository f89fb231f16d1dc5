"""Rebuild the small samples in this folder from the full data sets (run by hand, not by the tests).

.venv/bin/python tests/routing/data/make_samples.py /work/shared/data
"""

from __future__ import annotations

import csv
import gzip
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent


def routerbench(data: Path, per_group: int = 40) -> None:
    """``per_group`` rows of each (split, task), without the ``|model_response`` columns."""
    with gzip.open(data / "routerbench_subset" / "routerbench_public.csv.gz", "rt", newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in reader.fieldnames or [] if not c.endswith("|model_response")]
        rows = list(reader)
    rng = random.Random(5)
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["split"], row["eval_name"]), []).append(row)
    picked = [row for key in sorted(groups) for row in rng.sample(groups[key], min(per_group, len(groups[key])))]
    with gzip.open(HERE / "routerbench_sample.csv.gz", "wt", newline="", compresslevel=9) as out:
        writer = csv.DictWriter(out, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(picked)


def mmlu(data: Path, rows: int = 60) -> None:
    with gzip.open(data / "routellm_evals" / "mmlu_responses.csv.gz", "rt", newline="") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        all_rows = list(reader)
    picked = random.Random(5).sample(all_rows, rows)
    with (HERE / "mmlu_sample.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows(picked)


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data")
    routerbench(source)
    mmlu(source)
