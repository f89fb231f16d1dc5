"""A fine-tuned student blended with frozen-vector heads, chosen on its held-out tenth of train.

STUDENT_DIR is a ``minilm-finetuned`` student trained on BANKING77's train split without ``--val``
(``banking77.py --student minilm-finetuned --int8 --keep DIR``): it was fine-tuned on nine tenths
of the train split and calibrated on the other tenth, which this script recovers with the same
split. Frozen heads (logistic regression on the cached vectors of ``encoders.py``) are fitted on
the same nine tenths; blend weights, temperature and the 0.99 abstention threshold are chosen on
the held-out tenth; the test split is scored once per row. Prints a markdown table.

    .venv/bin/python bench/distill/finetuned_blend.py STUDENT_DIR [--heads minilm:16,l3:16] [--cache DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from banking77 import read
from encoders import blend, cascade, choose_weights
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from tokenomy.distill.encoder_student import EncoderStudent
from tokenomy.distill.finetune import FineTuneSettings, _split
from tokenomy.distill.student import load_student
from tokenomy.distill.train import _log_softmax, choose_threshold


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("student", type=Path)
    parser.add_argument("--heads", default="minilm:16,l3:16", help="encoder:C pairs (C as encoders.py chose)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "tokenomy-bench" / "banking77")
    args = parser.parse_args()
    train, test = read("train.csv.gz"), read("test.csv.gz")
    student = load_student(args.student)
    assert isinstance(student, EncoderStudent), "a minilm-finetuned student"
    _, held, _ = _split(train, None, FineTuneSettings())
    rows = list(range(len(train.texts)))
    fit_rows, held_rows = train_test_split(rows, test_size=len(held.texts), stratify=train.labels, random_state=0)
    assert [train.texts[i] for i in held_rows] == held.texts, "not the fine-tuning's split"
    labels, y = student.labels, np.asarray(train.labels)
    truth_held = np.searchsorted(labels, np.asarray(held.labels))
    truth_test = np.searchsorted(labels, np.asarray(test.labels))
    on_held, on_test = {"fine-tuned": student.scores(held.texts)}, {"fine-tuned": student.scores(test.texts)}
    names = []
    with threadpool_limits(1):
        for spec in args.heads.split(","):
            name, c = spec.split(":")
            x_train, x_test = np.load(args.cache / f"{name}_train.npy"), np.load(args.cache / f"{name}_test.npy")
            head = LogisticRegression(max_iter=3000, C=float(c)).fit(x_train[fit_rows], y[fit_rows])
            on_held[name], on_test[name] = head.decision_function(x_train[held_rows]), head.decision_function(x_test)
            names.append(name)
    combos = [["fine-tuned"], *[["fine-tuned", n] for n in names]] + (
        [["fine-tuned", *names]] if len(names) > 1 else []
    )
    print(
        "| heads (blend weight) | held-out accuracy / AUROC | test accuracy | test AUROC | threshold "
        "| teacher share | cascade accuracy | cascade accuracy, 10% to teacher |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for combo in combos:
        weights, temperature = choose_weights([on_held[k] for k in combo], truth_held)
        held_probs = np.exp(_log_softmax(blend([on_held[k] for k in combo], weights) / temperature))
        threshold = choose_threshold(held_probs.max(axis=1), held_probs.argmax(axis=1) == truth_held, 0.99)
        test_probs = np.exp(_log_softmax(blend([on_test[k] for k in combo], weights) / temperature))
        a, b = cascade(held_probs, truth_held, threshold), cascade(test_probs, truth_test, threshold)
        label = " \\| ".join(f"{k} ({w:g})" for k, w in zip(combo, weights, strict=True))
        print(
            f"| {label} | {a['accuracy']:.4f} / {a['auroc']:.3f} | {b['accuracy']:.4f} | {b['auroc']:.3f} "
            f"| {threshold:.3f} | {b['teacher']:.3f} | {b['cascade']:.4f} | {b['cascade_at_10']:.4f} |"
        )


if __name__ == "__main__":
    main()
