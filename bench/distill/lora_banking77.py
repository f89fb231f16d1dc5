"""A generative LoRA student on BANKING77 as text generation (query -> intent name), against the base model.

Trains ``--student smollm-lora`` (as ``tokenomy distill train`` does) on a fixed random subset of
the train split (``--train``, seed 0), or reuses a trained directory (``--student-dir``), then:

- answers a fixed random sample of the test split (``--test``, seed 0) greedily through the
  serving engine (llama.cpp, the base's F16 variant + the GGUF adapter, one thread): exact-match
  accuracy, p50 / p99 wall latency and CPU per request in process;
- checks that llama.cpp reproduces the PyTorch model: the adapter read back from its GGUF file
  into PEFT on the dequantised base, greedy answers on the first ``--agree`` test prompts;
- asks the base model without the adapter the first ``--baseline`` test prompts zero-shot (a
  system prompt listing the 77 intents) and few-shot (the same plus five labelled training
  queries as earlier turns), same engine settings;
- optionally (``--encoder-student DIR``) scores a head or fine-tuned encoder student on the same
  test sample.

Prints a markdown table. Needs the ``distill`` extra (PyTorch, transformers, peft, gguf).

    .venv/bin/python bench/distill/lora_banking77.py [--train 4000] [--test 300] [--student-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tokenomy.distill.dialogues import Dialogues
from tokenomy.distill.lora_evaluate import lora_figures
from tokenomy.distill.lora_gguf import ARCH
from tokenomy.distill.lora_student import LoraStudent, engine_answers, served_base
from tokenomy.distill.student import MANIFEST, load_student

DATA = Path(__file__).parent / "data"
STUDENT_USD_PER_HOUR = 0.05  # a stated price for the 2 vCPUs the student runs on


def read(name: str) -> list[dict[str, str]]:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sample(rows: list[dict[str, str]], n: int) -> Dialogues:
    index = list(range(len(rows)))
    random.Random(0).shuffle(index)
    picked = [rows[i] for i in index[:n]]
    return Dialogues([[{"role": "user", "content": r["text"]}] for r in picked], [r["category"] for r in picked])


def torch_from_adapter(student: LoraStudent) -> tuple[Any, Any]:
    """The dequantised base with the adapter's weights put back into PEFT LoRA layers (rows un-permuted)."""
    import gguf
    import torch
    from peft import LoraConfig, get_peft_model

    from tokenomy.distill.lora_train import load_base

    reader = gguf.GGUFReader(str(student.adapter_path))
    field = reader.fields[gguf.Keys.Adapter.LORA_ALPHA]
    alpha = int(field.parts[field.data[0]][0])
    assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == ARCH
    tensors = {t.name: np.array(t.data, dtype=np.float32) for t in reader.tensors}
    model, tokenizer = load_base()
    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    targets = student.info["targets"]
    rank = int(student.info["settings"]["rank"])
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets))
    loaded = 0
    for name, module in model.named_modules():
        if not (hasattr(module, "lora_A") and "default" in module.lora_A):
            continue
        key = names.get_name(name.removeprefix("base_model.model."))
        a, b = tensors[f"{key}.weight.lora_a"], tensors[f"{key}.weight.lora_b"]
        heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}.get(name.split(".")[-1])
        if heads:  # undo lora_gguf.permute_rows
            b = b.reshape(heads, b.shape[0] // heads // 2, 2, b.shape[1]).swapaxes(1, 2).reshape(b.shape)
        with torch.no_grad():
            module.lora_A["default"].weight.copy_(torch.from_numpy(a))
            module.lora_B["default"].weight.copy_(torch.from_numpy(b))
        loaded += 1
    assert loaded * 2 == len(tensors), (loaded, len(tensors))
    model.eval()
    return model, tokenizer


def baseline_prompts(test: Dialogues, train_rows: list[dict[str, str]], intents: list[str], few: bool) -> list[Any]:
    system = (
        "Classify the online-banking customer query into exactly one of these intents and answer with the "
        "intent name only: " + ", ".join(intents) + "."
    )
    shots: list[dict[str, str]] = []
    if few:
        for row in random.Random(1).sample(train_rows, 5):
            shots += [{"role": "user", "content": row["text"]}, {"role": "assistant", "content": row["category"]}]
    return [[{"role": "system", "content": system}, *shots, *messages] for messages in test.messages]


def student_rows(args: argparse.Namespace, train_rows: list[dict[str, str]], test: Dialogues) -> list[tuple[str, str]]:
    """Train (or reuse) the student; its accuracy, latency and size, and llama.cpp's agreement with PyTorch."""
    with tempfile.TemporaryDirectory() as tmp:
        out = args.student_dir or args.keep or Path(tmp) / "student"
        if args.student_dir is None:
            from tokenomy.distill.lora_train import train_lora_student

            train_lora_student(sample(train_rows, args.train), out)
        student = load_student(out)
        assert isinstance(student, LoraStudent)
        info = json.loads((out / MANIFEST).read_text())
        figures, answers = lora_figures(student, test)
        import torch

        from tokenomy.distill.lora_train import torch_answers

        torch.set_num_threads(1)
        model, tokenizer = torch_from_adapter(student)
        reference = torch_answers(model, tokenizer, test.messages[: args.agree], student.max_answer_tokens)
    agreement = float(np.mean([a == b for a, b in zip(answers, reference, strict=False)]))
    intents = {r["category"] for r in train_rows}
    cost = STUDENT_USD_PER_HOUR / 3600 * figures["cpu_ms_per_request"]  # per 1,000 requests
    n = len(test)
    return [
        (
            "training examples (random subset of the train split) / steps of 16",
            f"{info['trained_examples']} / {info['steps']}",
        ),
        (
            "training CPU s: base load / LoRA steps; wall s",
            f"{info['load_cpu_seconds']} / {info['train_cpu_seconds']}; {info['train_seconds']}",
        ),
        ("adapter size MB (GGUF, float32)", f"{figures['size_mb']:.2f}"),
        (f"**LoRA student exact-match accuracy** ({n} test queries)", f"**{figures['accuracy']:.4f}**"),
        ("answers that are one of the 77 intent names", f"{np.mean([a in intents for a in answers]):.4f}"),
        (f"llama.cpp answers equal to PyTorch's (first {len(reference)} test queries)", f"{agreement:.4f}"),
        (
            "p50 / p99 latency, in process, one thread (ms)",
            f"{figures['p50_latency_ms']:.0f} / {figures['p99_latency_ms']:.0f}",
        ),
        ("CPU ms per request, in process", f"{figures['cpu_ms_per_request']:.0f}"),
        ("student cost per 1,000 requests at $0.05/hour of CPU", f"${cost:.5f}"),
    ]


def baseline_rows(args: argparse.Namespace, train_rows: list[dict[str, str]], test: Dialogues) -> list[tuple[str, str]]:
    """The base model without the adapter, zero-shot and 5-shot, on the first ``--baseline`` test queries."""
    from tokenomy.providers.local.generation import LlamaEngine

    base = LlamaEngine(served_base(), name="base", n_ctx=2048, n_threads=1, repeat_penalty=1.0, loop_guard=False)
    base.load()
    intents = sorted({r["category"] for r in train_rows})
    head = Dialogues(test.messages[: args.baseline], test.answers[: args.baseline])
    rows = []
    try:
        for few, name in ((False, "zero-shot"), (True, "5-shot")):
            said, _, cpu = engine_answers(base, baseline_prompts(head, train_rows, intents, few), 24)
            right = np.mean([a == b for a, b in zip(said, head.answers, strict=True)])
            rows.append(
                (f"base model {name} accuracy (first {len(head)} test queries; the 77 intents listed)", f"{right:.4f}")
            )
            rows.append(
                (f"base model {name}: CPU ms per request; first answers", f"{cpu * 1000 / len(said):.0f}; {said[:2]}")
            )
    finally:
        base.close()
    return rows


def encoder_rows(path: Path, test: Dialogues) -> list[tuple[str, str]]:
    """A label student (head or fine-tuned encoder) on the same test queries."""
    from tokenomy.distill.embed import Encoder
    from tokenomy.distill.encoder_student import EncoderStudent
    from tokenomy.distill.evaluate import classifier

    enc = load_student(path)
    assert not isinstance(enc, LoraStudent)
    predict = classifier(enc, None if isinstance(enc, EncoderStudent) else Encoder())
    texts = [m[-1]["content"] for m in test.messages]
    accuracy = np.mean([p.label == t and not p.abstained for p, t in zip(predict(texts), test.answers, strict=True)])
    right = np.mean([p.label == t for p, t in zip(predict(texts), test.answers, strict=True)])
    return [
        (
            f"encoder student {path.name}: accuracy without abstention / abstentions wrong ({len(test)} queries)",
            f"{right:.4f} / {accuracy:.4f}",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=4000, help="training queries (a fixed random subset)")
    parser.add_argument("--test", type=int, default=300, help="test queries (a fixed random sample; 0: no student)")
    parser.add_argument("--agree", type=int, default=50, help="test prompts for the PyTorch / llama.cpp check")
    parser.add_argument("--baseline", type=int, default=30, help="test prompts for the base model (0: none)")
    parser.add_argument("--student-dir", type=Path, default=None, help="a trained smollm-lora directory to reuse")
    parser.add_argument("--keep", type=Path, default=None, help="write the trained student here")
    parser.add_argument("--encoder-student", type=Path, default=None, help="also score this encoder student")
    args = parser.parse_args()
    train_rows, test_rows = read("train.csv.gz"), read("test.csv.gz")
    test = sample(test_rows, max(args.test, args.baseline))
    rows: list[tuple[str, str]] = []
    if args.test:
        rows += student_rows(args, train_rows, Dialogues(test.messages[: args.test], test.answers[: args.test]))
    if args.baseline:
        rows += baseline_rows(args, train_rows, test)
    if args.encoder_student is not None:
        rows += encoder_rows(args.encoder_student, Dialogues(test.messages[: args.test], test.answers[: args.test]))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end; {when}")
    print()
    print("| figure | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
