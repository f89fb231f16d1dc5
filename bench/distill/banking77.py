"""A distilled intent student on BANKING77: train on the train split, test on the test split.

Trains a student as ``tokenomy distill train`` does (default: the fine-tuned MiniLM, which needs
the ``distill`` extra; ``--student minilm-ngram`` or ``minilm-head`` for the head kinds), evaluates
it once on the 3,080 test queries, runs a student-first cascade offline (the teacher is the test
label, so a request sent to the teacher is answered right), and compares costs per 1,000 requests.
Prints a markdown table.

    .venv/bin/python bench/distill/banking77.py [--student KIND] [--epochs 4] [--int8] [--keep DIR] [--target 0.99]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from tokenomy.distill.data import Examples
from tokenomy.distill.embed import Encoder
from tokenomy.distill.evaluate import classifier, evaluate_student
from tokenomy.distill.finetune import FineTuneSettings, finetune_student
from tokenomy.distill.student import load_student
from tokenomy.distill.train import train_student

KINDS = ["minilm-finetuned", "minilm-ngram", "minilm-head"]

DATA = Path(__file__).parent / "data"
# Teacher: gpt-4o-mini list prices (USD per 1M tokens), a prompt that lists the 77 intents.
TEACHER_IN, TEACHER_OUT = 0.15, 0.60
TEACHER_PROMPT_TOKENS, TEACHER_ANSWER_TOKENS = 450, 6
STUDENT_USD_PER_HOUR = 0.05  # a stated price for the 2 vCPUs the student runs on


def read(name: str, limit: int | None = None) -> Examples:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    return Examples([r["text"] for r in rows], [r["category"] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--student", choices=KINDS, default=KINDS[0])
    parser.add_argument("--epochs", type=int, default=FineTuneSettings().epochs, help="minilm-finetuned only")
    parser.add_argument("--int8", action="store_true", help="minilm-finetuned only: int8 weights")
    parser.add_argument("--keep", type=Path, default=None, help="write the student here (default: a temp dir)")
    args = parser.parse_args()
    train, test = read("train.csv.gz", args.train_limit), read("test.csv.gz")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if args.student == "minilm-finetuned":
            encoder = None
            student = finetune_student(
                train, out, target=args.target, settings=FineTuneSettings(epochs=args.epochs, int8=args.int8)
            )
            info = student.info
            fit_line = (
                f"held-out tenth of train: model accuracy {info['model_calibration_accuracy']:.4f}, "
                f"with the n-gram head (weight {info['ngram_weight']}) {info['calibration_accuracy']:.4f}"
            )
        else:
            encoder = Encoder()
            head = train_student(train, encoder.encode, target=args.target, lexical=args.student == "minilm-ngram")
            head.save(out)
            student = head
            fit_line = f"C={head.info['c']}, cv accuracy {head.info['cv_accuracy']:.4f}"
        train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - wall0
        loaded = load_student(out)
        figures = evaluate_student(loaded, test, encoder, out)
        predictions = classifier(loaded, encoder)(test.texts)
    abstained = np.asarray([p.abstained for p in predictions])
    right = np.asarray([p.label == t for p, t in zip(predictions, test.labels, strict=True)])
    cascade_accuracy = float((right | abstained).mean())  # abstentions go to the teacher (= the label)
    teacher_per_1k = 1000 * (TEACHER_PROMPT_TOKENS * TEACHER_IN + TEACHER_ANSWER_TOKENS * TEACHER_OUT) / 1e6
    student_per_1k = STUDENT_USD_PER_HOUR / 3600 * figures["p50_latency_ms"] / 1000 * 1000
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    info = student.info
    print(f"student {args.student}; train {len(train.texts)} examples, test {len(test.texts)}; {fit_line}")
    print(f"abstention threshold {student.threshold:.3f} ({info['threshold_from']})")
    print()
    print("| figure | value |")
    print("|---|---|")
    rows = [
        ("accuracy, abstentions wrong", f"{figures['accuracy']:.4f}"),
        ("accuracy without abstention", f"{figures['accuracy_without_abstention']:.4f}"),
        ("answered share", f"{figures['answered_share']:.4f}"),
        ("accuracy when answered", f"{figures['accuracy_when_answered']:.4f}"),
        ("student-first cascade accuracy", f"{cascade_accuracy:.4f}"),
        ("share sent to the teacher", f"{abstained.mean():.4f}"),
        ("p50 / p99 latency, one request (ms)", f"{figures['p50_latency_ms']:.1f} / {figures['p99_latency_ms']:.1f}"),
        ("CPU ms per request, batch of one", f"{figures['cpu_ms_per_request']:.1f}"),
        ("training (wall s / CPU s)", f"{train_wall:.0f} / {train_cpu:.0f}"),
        ("student directory (MB)", f"{figures['size_mb']:.3f}"),
        ("teacher cost per 1,000 (gpt-4o-mini)", f"${teacher_per_1k:.4f}"),
        (f"student cost per 1,000 (${STUDENT_USD_PER_HOUR}/h, p50)", f"${student_per_1k:.6f}"),
        ("cascade cost per 1,000", f"${student_per_1k + abstained.mean() * teacher_per_1k:.4f}"),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
