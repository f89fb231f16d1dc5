"""``tokenomy distill train --student smollm-lora``: a LoRA adapter for SmolLM2 served by llama.cpp, and its errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tokenomy.cli import main
from tokenomy.distill.data import DistillDataError
from tokenomy.distill.dialogues import Dialogues, load_dialogues
from tokenomy.distill.errors import StudentError
from tokenomy.distill.lora_student import LoraStudent, engine_answers, greedy_answers, load_engine, student_engine
from tokenomy.distill.student import load_student
from tokenomy.gateway import Gateway

DATA = Path(__file__).parent / "data"
HELD_OUT = 8


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["distill", *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def labelled(name: str) -> Dialogues:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines()]
    return Dialogues([[{"role": "user", "content": r["text"]}] for r in rows], [r["label"] for r in rows])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoraStudent, list[str]]:
    """A few LoRA steps on the 12-intent subset, and the PyTorch model's greedy answers on held-out queries."""
    pytest.importorskip("torch", reason="the distill extra (PyTorch) is not installed; see docs/architecture.md")
    pytest.importorskip("peft", reason="the distill extra (peft) is not installed")
    from tokenomy.distill.lora_train import LoraSettings, torch_answers, train_lora_student

    train, test = labelled("banking77_train.jsonl"), labelled("banking77_test.jsonl")
    kept: list[Any] = []
    out = tmp_path_factory.mktemp("lora") / "student"
    settings = LoraSettings(batch_size=8, max_steps=6, lr=3e-3)
    data = Dialogues(train.messages[:96], train.answers[:96])
    student = train_lora_student(data, out, settings=settings, on_trained=lambda *pair: kept.extend(pair))
    model, tokenizer = kept
    return student, torch_answers(model, tokenizer, test.messages[:HELD_OUT], student.max_answer_tokens)


def test_llama_cpp_with_the_adapter_reproduces_the_trained_model(trained: tuple[LoraStudent, list[str]]) -> None:
    student, reference = trained
    conversations = labelled("banking77_test.jsonl").messages[:HELD_OUT]
    answers, _, _ = greedy_answers(student, conversations)
    agreement = sum(a == b for a, b in zip(answers, reference, strict=True)) / HELD_OUT
    assert agreement >= 0.75, (answers, reference)  # measured 8/8; F16 kernels may round a close call otherwise
    base = student_engine(student)
    base.lora_path = None
    load_engine(student, base)
    try:
        plain, _, _ = engine_answers(base, conversations, student.max_answer_tokens)
    finally:
        base.close()
    assert sum(a != b for a, b in zip(answers, plain, strict=True)) >= HELD_OUT // 2  # the adapter changes answers


def test_the_manifest_and_the_adapter_file(trained: tuple[LoraStudent, list[str]]) -> None:
    import gguf

    student, _ = trained
    manifest = json.loads((student.directory / "student.json").read_text())
    assert manifest["kind"] == "lora-adapter" and manifest["format_version"] == 1
    assert manifest["base_model"] == "smollm2-135m-instruct" and len(manifest["base_sha256"]) == 64
    assert set(manifest["files"]) == {"adapter.gguf"} and manifest["steps"] == 6
    reader = gguf.GGUFReader(str(student.adapter_path))
    kind = reader.fields["general.type"]
    assert bytes(kind.parts[kind.data[0]]).decode() == "adapter"
    names = {t.name for t in reader.tensors}
    assert "blk.0.attn_q.weight.lora_a" in names and "blk.29.ffn_down.weight.lora_b" in names
    assert len(names) == 30 * 7 * 2


def test_evaluate_prints_exact_match_figures(trained: tuple[LoraStudent, list[str]], tmp_path: Path) -> None:
    data = tmp_path / "test.jsonl"
    rows = [json.loads(line) for line in (DATA / "banking77_test.jsonl").read_text().splitlines()][:4]
    data.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": r["text"]}], "answer": r["label"]}) + "\n"
            for r in rows
        )
    )
    student, _ = trained
    code, out = run("evaluate", "--model", str(student.directory), "--data", str(data), "--format", "json")
    assert code == 0, out
    figures = json.loads(out)
    assert figures["examples"] == 4 and figures["answered_share"] == 1.0 and 0 <= figures["accuracy"] <= 1
    assert figures["p50_latency_ms"] > 0 and 1 < figures["size_mb"] < 20


def test_a_truncated_or_foreign_adapter_is_refused(trained: tuple[LoraStudent, list[str]], tmp_path: Path) -> None:
    student, _ = trained
    truncated = tmp_path / "truncated"
    shutil.copytree(student.directory, truncated)
    adapter = truncated / "adapter.gguf"
    adapter.write_bytes(adapter.read_bytes()[:5000])
    with pytest.raises(StudentError, match=f"{adapter}: truncated or changed"):
        load_student(truncated)
    other = tmp_path / "other"
    shutil.copytree(student.directory, other)
    manifest = json.loads((other / "student.json").read_text())
    (other / "student.json").write_text(json.dumps(manifest | {"base_sha256": "0" * 64, "base_file": "x.gguf"}))
    with pytest.raises(StudentError, match=f"{other}: the adapter was trained on another base model"):
        load_student(other)
    (other / "student.json").write_text(json.dumps(manifest | {"format_version": 9}))
    with pytest.raises(StudentError, match="lora-adapter student format version 9; this Tokenomy reads 1"):
        load_student(other)


def test_an_adapter_of_other_shapes_stops_the_gateway(trained: tuple[LoraStudent, list[str]], tmp_path: Path) -> None:
    """A well-formed GGUF adapter whose shapes do not fit the base's tensors: refused at start-up, with the path."""
    import gguf
    import numpy as np

    from tokenomy.config import parse_config
    from tokenomy.distill.encoder_student import file_sha256

    student, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(student.directory, bad)
    writer = gguf.GGUFWriter(str(bad / "adapter.gguf"), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((8, 100), dtype=np.float32))  # 100 inputs, not 576
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((576, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    manifest = json.loads((bad / "student.json").read_text())
    manifest["files"] = {"adapter.gguf": file_sha256(bad / "adapter.gguf")}
    (bad / "student.json").write_text(json.dumps(manifest))
    text = f'models:\n  - name: s\n    deployments:\n      - {{provider: local, model: distilled, path: "{bad}"}}\n'
    with pytest.raises(StudentError, match=f"{bad / 'adapter.gguf'}: blk.0.attn_q.weight adapts a 576x576 weight"):
        Gateway(parse_config(text))  # llama.cpp itself would load it and abort the process at the first token


def test_bad_training_data_is_refused_before_loading_anything(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, out = run("train", "--data", str(empty), "--out", str(tmp_path / "s"), "--student", "smollm-lora")
    assert code == 1 and "no examples" in out and "Traceback" not in out
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"messages": [{"role": "user", "content": "hi"}], "answer": "x"}\n{"text": " ", "answer": "y"}\n')
    code, out = run("train", "--data", str(blank), "--out", str(tmp_path / "s"), "--student", "smollm-lora")
    assert code == 1 and f"{blank}:2: empty text" in out
    no_answer = tmp_path / "none.jsonl"
    no_answer.write_text('{"text": "hi"}\n')
    with pytest.raises(DistillDataError, match=f'{no_answer}:1: no "answer"'):
        load_dialogues(no_answer)
    assert not (tmp_path / "s").exists()


def test_without_the_extra_the_error_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a", "answer": "x"}\n{"text": "b", "answer": "y"}\n')
    code, out = run("train", "--data", str(data), "--out", str(tmp_path / "s"), "--student", "smollm-lora")
    assert code == 1 and "pip install 'tokenomy[distill]'" in out and "peft is not installed" in out


async def test_the_gateway_serves_the_students_answers(trained: tuple[LoraStudent, list[str]]) -> None:
    """Through the gateway (official client, loopback HTTP): the answers llama.cpp gave in process, greedily."""
    import openai
    from tests.support.gateway import running_gateway

    student, _ = trained
    conversations = labelled("banking77_test.jsonl").messages[:3]
    expected, _, _ = await asyncio.to_thread(greedy_answers, student, conversations)
    text = (
        "models:\n  - name: s\n    deployments:\n"
        f'      - {{provider: local, model: distilled, path: "{student.directory}"}}\n'
    )
    async with (
        running_gateway(text) as running,
        openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as client,
    ):
        for messages, answer in zip(conversations, expected, strict=True):
            reply = await client.chat.completions.create(model="s", messages=messages, temperature=1.5)  # type: ignore[arg-type]
            assert (reply.choices[0].message.content or "").strip() == answer  # greedy whatever the request asks
            assert reply.usage is not None and reply.usage.completion_tokens <= student.max_answer_tokens
