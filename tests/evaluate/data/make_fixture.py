"""Rebuild ``routerbench_mc.jsonl.gz`` from RouterBench's public subset (seeded; see SOURCE.md).

Usage: python tests/evaluate/data/make_fixture.py PATH/TO/routerbench_public.csv.gz
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import random
import sys
from pathlib import Path

MODELS = ("mistralai/mistral-7b-chat", "gpt-3.5-turbo-1106", "zero-one-ai/Yi-34B-Chat", "gpt-4-1106-preview")
PER_TASK = 100
TASKS = {"arc-challenge": "ABCD", "winogrande": "AB"}


def text(cell: str) -> str:
    """RouterBench stores prompts and responses as Python list literals: join their strings."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        return cell
    return "\n\n".join(value) if isinstance(value, list) else str(value)


def main(source: str) -> None:
    from tokenomy.evaluate.scorers.text import Choice

    with gzip.open(source, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(13)
    out = []
    for task, letters in TASKS.items():
        extract = Choice(letters).extract
        members = [r for r in rows if r["eval_name"] == task]
        rng.shuffle(members)
        kept = 0
        for row in members:
            if kept == PER_TASK:
                break
            if any(row[m] == "" for m in MODELS):
                continue
            responses = {m: text(row[f"{m}|model_response"]) for m in MODELS}
            right = {extract(responses[m]) for m in MODELS if float(row[m]) == 1.0}
            right.discard(None)
            if len(right) > 1:
                continue  # the labels disagree with each other: no single reference letter
            if right:
                expected = right.pop()
            else:  # nobody was right: the reference is a letter no model chose
                chosen = {extract(responses[m]) for m in MODELS}
                free = [c for c in letters if c not in chosen]
                if not free:
                    continue
                expected = free[0]
            out.append(
                {
                    "id": row["sample_id"],
                    "task": task,
                    "prompt": text(row["prompt"]),
                    "expected": expected,
                    "labels": {m: float(row[m]) for m in MODELS},
                    "responses": responses,
                    "costs": {m: float(row[f"{m}|total_cost"]) for m in MODELS},
                }
            )
            kept += 1
    target = Path(__file__).with_name("routerbench_mc.jsonl.gz")
    with gzip.open(target, "wt", encoding="utf-8") as f:
        for item in out:
            f.write(json.dumps(item) + "\n")
    print(f"{target}: {len(out)} items")


if __name__ == "__main__":
    main(sys.argv[1])
