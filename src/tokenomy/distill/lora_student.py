"""A generative student on disk: a LoRA adapter (GGUF) for the embedded SmolLM2-135M-Instruct.

Written by :mod:`tokenomy.distill.lora_train` (which needs PyTorch); served by llama.cpp, which
applies the adapter to the base model at load time, so serving needs no PyTorch. A directory
holds ``student.json`` (format version, kind ``lora-adapter``, the base model, the SHA-256 of the
base file the adapter was trained on and of the adapter, the LoRA settings, training figures) and
``adapter.gguf``. The adapter is served on the base's F16 variant: the shipped Q4_1 file
converted to F16 with llama.cpp's quantizer, which holds the same weights that training started
from (transformers dequantises the Q4_1 file), without the quantized kernels' CPU-dependent
rounding (made once in the models directory, as the embedded model's variant check does).
:func:`load_lora_student` refuses a directory that is missing a file, has a truncated or
changed one, is from another format version, or was trained on another base file, naming the
path and the reason.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenomy.distill.encoder_student import file_sha256
from tokenomy.distill.errors import StudentError
from tokenomy.distill.student import MANIFEST

if TYPE_CHECKING:
    from tokenomy.providers.local.generation import LlamaEngine

LORA_FORMAT_VERSION = 1
LORA_KIND = "lora-adapter"
ADAPTER_FILE = "adapter.gguf"
BASE_MODEL = "smollm2-135m-instruct"
SERVE_VARIANT = "f16"

log = logging.getLogger("tokenomy.distill")


def shipped_base() -> Path:
    """The embedded SmolLM2-135M-Instruct GGUF file (Q4_1) that adapters are trained on."""
    from tokenomy.providers.local.generation import default_model_path

    return default_model_path()


def served_base(source: Path | None = None) -> Path:
    """The F16 variant of the base file (made with llama.cpp's quantizer the first time, about a second)."""
    from tokenomy.providers.local.variants import models_dir, variant_path
    from tokenomy.quantize.gguf import quantize_gguf

    source = source or shipped_base()
    path = variant_path(source, SERVE_VARIANT, models_dir())
    if not path.is_file():
        quantize_gguf(source, path, SERVE_VARIANT)
        log.info("made the %s variant of %s for LoRA students", SERVE_VARIANT, source.name)
    return path


@dataclass(slots=True)
class LoraStudent:
    """A checked adapter directory: the adapter, the base file to apply it to, and the manifest's figures."""

    directory: Path
    base_path: Path
    max_answer_tokens: int = 32
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter_path(self) -> Path:
        """The GGUF LoRA adapter."""
        return self.directory / ADAPTER_FILE

    def save_manifest(self, base_sha256: str) -> None:
        """Write ``student.json`` with the checksums (last: it marks the directory whole)."""
        manifest = {
            "format_version": LORA_FORMAT_VERSION,
            "kind": LORA_KIND,
            "base_model": BASE_MODEL,
            "base_file": shipped_base().name,
            "base_sha256": base_sha256,
            "serve_variant": SERVE_VARIANT,
            "max_answer_tokens": self.max_answer_tokens,
            "files": {ADAPTER_FILE: file_sha256(self.adapter_path)},
            **self.info,
        }
        (self.directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def load_lora_student(directory: Path, manifest: dict[str, Any]) -> LoraStudent:
    """Check a LoRA student's files and base against its manifest (llama.cpp loads it later)."""
    if manifest.get("format_version") != LORA_FORMAT_VERSION:
        raise StudentError(
            f"{directory}: {LORA_KIND} student format version {manifest.get('format_version')!r}; "
            f"this Tokenomy reads {LORA_FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {ADAPTER_FILE}:
        raise StudentError(f"{directory}: {MANIFEST} does not list {ADAPTER_FILE}")
    adapter = directory / ADAPTER_FILE
    if not adapter.is_file():
        raise StudentError(f"{directory}: no {ADAPTER_FILE}")
    if file_sha256(adapter) != files[ADAPTER_FILE]:
        raise StudentError(f"{adapter}: truncated or changed (its SHA-256 does not match {MANIFEST})")
    base = shipped_base()
    if manifest.get("base_model") != BASE_MODEL or manifest.get("base_sha256") != file_sha256(base):
        raise StudentError(
            f"{directory}: the adapter was trained on another base model ({manifest.get('base_model')!r}, "
            f"{manifest.get('base_file')!r}), not on this Tokenomy's {base.name}"
        )
    try:
        served = served_base(base)
    except (OSError, ValueError) as exc:
        raise StudentError(f"{directory}: could not prepare the base model's {SERVE_VARIANT} variant ({exc})") from None
    check_adapter(adapter, served)
    info = {k: v for k, v in manifest.items() if k not in ("files",)}
    return LoraStudent(directory, served, int(manifest.get("max_answer_tokens", 32)), info)


def _text(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    return bytes(field.parts[field.data[0]]).decode() if field is not None else None


@functools.lru_cache(maxsize=4)
def _base_shapes(base: Path) -> tuple[str | None, dict[str, tuple[int, ...]]]:
    import gguf

    reader = gguf.GGUFReader(str(base))
    return _text(reader, "general.architecture"), {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}


def check_adapter(adapter: Path, base: Path) -> None:
    """Refuse an adapter that is not a LoRA GGUF for ``base``'s architecture, or whose tensors fit none of the base's.

    llama.cpp checks little of this when it loads an adapter: one with the wrong inner size loads and
    then aborts the process at the first token.
    """
    import gguf

    try:
        reader = gguf.GGUFReader(str(adapter))
    except Exception as exc:  # the reader raises ValueError, KeyError or struct errors on a broken file
        raise StudentError(f"{adapter}: not a GGUF LoRA adapter ({exc})") from None
    arch, shapes = _base_shapes(base)
    if _text(reader, "general.type") != "adapter" or _text(reader, "adapter.type") != "lora":
        raise StudentError(f"{adapter}: not a LoRA adapter (general.type {_text(reader, 'general.type')!r})")
    if _text(reader, "general.architecture") != arch:
        raise StudentError(f"{adapter}: an adapter for {_text(reader, 'general.architecture')!r}, the base is {arch!r}")
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for tensor in reader.tensors:
        name, _, part = tensor.name.rpartition(".")
        if part not in ("lora_a", "lora_b"):
            raise StudentError(f"{adapter}: unexpected tensor {tensor.name!r}")
        parts.setdefault(name, {})[part] = tuple(int(n) for n in tensor.shape)
    if not parts:
        raise StudentError(f"{adapter}: no LoRA tensors")
    for name, pair in parts.items():
        if name not in shapes:
            raise StudentError(f"{adapter}: {name} is not a tensor of the base model")
        if set(pair) != {"lora_a", "lora_b"}:
            raise StudentError(f"{adapter}: {name} lacks {({'lora_a', 'lora_b'} - set(pair)).pop()}")
        (n_in, n_out), (a_in, rank), (b_rank, b_out) = shapes[name][:2], pair["lora_a"], pair["lora_b"]
        if (a_in, b_out, b_rank) != (n_in, n_out, rank):
            raise StudentError(
                f"{adapter}: {name} adapts a {n_in}x{n_out} weight with {a_in}x{rank} and {b_rank}x{b_out} "
                "matrices (an adapter for another base model)"
            )


def student_engine(student: LoraStudent, *, name: str = "distilled", n_threads: int | None = None) -> LlamaEngine:
    """A llama.cpp engine for the student: the base's F16 variant with the adapter, no repetition penalty
    (the answers are the ones greedy decoding of the trained model gives)."""
    from tokenomy.providers.local.generation import LlamaEngine

    return LlamaEngine(
        student.base_path,
        name=name,
        n_ctx=2048,
        n_threads=n_threads,
        repeat_penalty=1.0,
        loop_guard=False,
        lora_path=student.adapter_path,
    )


def load_engine(student: LoraStudent, engine: LlamaEngine) -> None:
    """Load the engine (blocking); a :class:`StudentError` naming the directory if llama.cpp refuses the adapter."""
    try:
        engine.load()
    except Exception as exc:  # llama.cpp rejects an adapter for another architecture or shape
        raise StudentError(
            f"{student.directory}: llama.cpp could not apply {ADAPTER_FILE} to the base model ({exc})"
        ) from None


def greedy_answers(
    student: LoraStudent, conversations: list[list[dict[str, Any]]], *, n_threads: int = 1
) -> tuple[list[str], list[float], float]:
    """The student's greedy answers through the serving engine, each request's wall seconds, and CPU seconds in all."""
    engine = student_engine(student, n_threads=n_threads)
    load_engine(student, engine)
    try:
        return engine_answers(engine, conversations, student.max_answer_tokens)
    finally:
        engine.close()


def engine_answers(
    engine: LlamaEngine, conversations: list[list[dict[str, Any]]], max_tokens: int
) -> tuple[list[str], list[float], float]:
    """Greedy answers from a loaded engine, one request at a time: answers, wall seconds each, CPU seconds in all."""
    import asyncio
    import time

    from tokenomy.providers.local.generation import Delta
    from tokenomy.providers.local.params import ChatPrompt, GenerationParams

    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, top_p=1.0)

    async def run() -> tuple[list[str], list[float], float]:
        answers, seconds = [], []
        cpu = time.process_time()
        for messages in conversations:
            started = time.perf_counter()
            handle = engine.submit(ChatPrompt(tuple(messages)), params)
            parts = [event.text async for event in handle.events() if isinstance(event, Delta)]
            seconds.append(time.perf_counter() - started)
            answers.append("".join(parts).strip())
        return answers, seconds, time.process_time() - cpu

    return asyncio.run(run())
