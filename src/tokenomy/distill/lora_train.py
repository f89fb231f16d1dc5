"""Train a LoRA adapter for the embedded SmolLM2-135M-Instruct on CPU and write it as a GGUF adapter.

The base weights are the embedded Q4_1 GGUF file, read and dequantised by transformers (with the
``gguf`` package). PEFT adds rank-``r`` adapters to every attention and MLP projection; only they
train. Each example is the conversation rendered with the model's own chat template (as the
gateway renders a chat request) followed by the answer and the end-of-turn token; the loss is the
answer tokens' cross-entropy, and the output layer runs on those positions only (it is the
largest matrix, and most positions are prompt). AdamW with a linear warm-up and decay, batches of
similar length, bfloat16 autocast when the CPU has native bfloat16, one PyTorch thread (see
:mod:`tokenomy.distill.finetune` for why). The adapter is written with
:mod:`tokenomy.distill.lora_gguf` and served by llama.cpp (:mod:`tokenomy.distill.lora_student`).
Needs the ``distill`` extra (PyTorch, transformers, peft, gguf).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenomy.distill.data import DistillDataError
from tokenomy.distill.dialogues import Dialogues
from tokenomy.distill.encoder_student import file_sha256
from tokenomy.distill.finetune import _batches, _bf16, require_extra, warmup_schedule
from tokenomy.distill.lora_gguf import write_adapter
from tokenomy.distill.lora_student import ADAPTER_FILE, BASE_MODEL, LoraStudent, load_lora_student, shipped_base
from tokenomy.distill.student import MANIFEST

log = logging.getLogger("tokenomy.distill")

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, slots=True)
class LoraSettings:
    """Training settings; the defaults are the ones measured on BANKING77 (see docs/benchmarks.md)."""

    epochs: int = 1
    batch_size: int = 16
    rank: int = 8
    alpha: int = 16
    lr: float = 1e-3
    warmup: float = 0.06
    max_prompt_tokens: int = 128  # longer conversations keep their last tokens
    seed: int = 0
    max_steps: int | None = None  # stop early (tests)


def require_lora_extra() -> None:
    """Raise :class:`MissingExtraError` naming the extra when PyTorch, transformers, peft or gguf is missing."""
    require_extra("LoRA student", "PyTorch, transformers, peft and gguf", ("gguf", "peft", "torch", "transformers"))


def load_base() -> tuple[Any, Any]:
    """The base model (dequantised to float32) and its tokenizer, from the embedded GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    logging.getLogger("transformers").setLevel(logging.ERROR)
    base = shipped_base()
    tokenizer = AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name)
    model = AutoModelForCausalLM.from_pretrained(str(base.parent), gguf_file=base.name)
    return model, tokenizer


def encode(
    tokenizer: Any, messages: list[dict[str, Any]], answer: str | None, max_prompt: int
) -> tuple[list[int], int]:
    """Token ids of the rendered conversation (and the answer and end of turn, if given); where the answer starts."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_prompt:]
    start = len(ids)
    if answer is not None:
        ids = ids + tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids, start


def train_lora_student(
    data: Dialogues,
    out: Path,
    *,
    settings: LoraSettings | None = None,
    info: dict[str, Any] | None = None,
    on_trained: Callable[[Any, Any], None] | None = None,
) -> LoraStudent:
    """Train the adapter on ``data``, write ``out`` (adapter and manifest) and return the checked student.

    ``on_trained(model, tokenizer)`` sees the trained PyTorch model before it is dropped (tests
    compare its answers with llama.cpp's)."""
    require_lora_extra()
    settings = settings or LoraSettings()
    if len(data) < 2:
        raise DistillDataError("the training data has fewer than two examples")
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    model, tokenizer = load_base()
    load_cpu = time.process_time() - started_cpu
    pairs = zip(data.messages, data.answers, strict=True)
    encoded = [encode(tokenizer, m, a, settings.max_prompt_tokens) for m, a in pairs]
    model, steps, loss = _train(model, encoded, settings)
    if on_trained is not None:
        on_trained(model, tokenizer)
    train_cpu = time.process_time() - started_cpu - load_cpu
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the manifest, written last, marks the directory whole
    config = model.base_model.model.config
    write_adapter(
        out / ADAPTER_FILE,
        adapter_matrices(model),
        alpha=settings.alpha,
        n_layers=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_head_kv=config.num_key_value_heads,
        name=f"{BASE_MODEL} LoRA student",
    )
    answer_tokens = max(len(ids) - start for ids, start in encoded)
    student = LoraStudent(out, shipped_base(), max_answer_tokens=answer_tokens + 8)
    student.info = {
        "trained_examples": len(data),
        "steps": steps,
        "final_loss": round(loss, 4),
        "settings": asdict(settings),
        "targets": list(TARGETS),
        "load_cpu_seconds": round(load_cpu, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "train_seconds": round(time.perf_counter() - started_wall, 1),
        "train_tokens": sum(len(ids) for ids, _ in encoded) * steps * settings.batch_size // max(1, len(encoded)),
        **(info or {}),
    }
    student.save_manifest(file_sha256(shipped_base()))
    return load_lora_student(out, _read_manifest(out))


def _read_manifest(out: Path) -> dict[str, Any]:
    import json

    manifest: dict[str, Any] = json.loads((out / MANIFEST).read_text())
    return manifest


def adapter_matrices(model: Any) -> dict[str, tuple[Any, Any]]:
    """Every adapted module's (A, B) as float32 arrays, by its transformers name (``model.layers.N....``)."""
    pairs: dict[str, tuple[Any, Any]] = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            key = name.removeprefix("base_model.model.")
            a = module.lora_A["default"].weight.detach().float().numpy()
            b = module.lora_B["default"].weight.detach().float().numpy()
            pairs[key] = (a, b)
    return pairs


def _train(model: Any, encoded: list[tuple[list[int], int]], settings: LoraSettings) -> tuple[Any, int, float]:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(1)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    config = LoraConfig(r=settings.rank, lora_alpha=int(settings.alpha), lora_dropout=0.0, target_modules=list(TARGETS))
    model = get_peft_model(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=0.0)
    total, schedule = warmup_schedule(
        optimizer, len(encoded), settings.batch_size, settings.epochs, settings.max_steps, settings.warmup
    )
    autocast = _bf16()
    inner = model.base_model.model  # LlamaForCausalLM with the LoRA layers in place
    lengths = [len(ids) for ids, _ in encoded]
    pad = 0
    model.train()
    step, recent = 0, 0.0
    while step < total:
        for batch in _batches(lengths, settings.batch_size, rng):
            if step >= total:
                break
            width = max(lengths[r] for r in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            rows, cols, targets = [], [], []
            for row, r in enumerate(batch):
                tokens, start = encoded[r]
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
                for position in range(start, len(tokens)):  # the state before each answer token predicts it
                    rows.append(row)
                    cols.append(position - 1)
                    targets.append(tokens[position])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                states = inner.model(input_ids=ids, attention_mask=mask).last_hidden_state
                logits = inner.lm_head(states[torch.tensor(rows), torch.tensor(cols)])
            loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(targets))
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            recent = value if step == 0 else 0.9 * recent + 0.1 * value
            step += 1
            if step % 10 == 0 or step == total:
                log.info("LoRA step %d/%d, loss %.3f, %.0f CPU s", step, total, recent, time.process_time())
    model.eval()
    return model, step, recent


def torch_answers(model: Any, tokenizer: Any, conversations: list[list[dict[str, Any]]], max_tokens: int) -> list[str]:
    """The PyTorch model's greedy answers (no repetition penalty), to compare with llama.cpp's."""
    import torch

    answers = []
    with torch.no_grad():
        for messages in conversations:
            ids, _ = encode(tokenizer, messages, None, 10_000)
            out = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.eos_token_id,
            )
            answers.append(tokenizer.decode(out[0][len(ids) :], skip_special_tokens=True).strip())
    return answers
