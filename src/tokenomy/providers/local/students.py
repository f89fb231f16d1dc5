"""Distilled students served as local models: ``{provider: local, model: distilled, path: DIR}``.

Every student a config names is loaded and checked when the provider is built, so a gateway with
a missing, truncated or incompatible student refuses to start (the error names the path and the
reason) instead of serving half a model. A generative (LoRA) student answers with generated text
on its own llama.cpp engine (the base model with the adapter), greedily. For a head student, a
request's user text is embedded
with the embedded MiniLM (through the shared micro-batcher) and the head picks a label; a
fine-tuned encoder student reads the text with its own ONNX model. The answer is the label, its
probability goes to the ``x-tokenomy-confidence`` header and to the body's ``tokenomy`` field,
which a cascade's ``confidence`` check reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tokenomy.config.models import GatewayConfig
from tokenomy.distill.data import text_of
from tokenomy.distill.encoder_student import EncoderStudent
from tokenomy.distill.errors import StudentError
from tokenomy.distill.lora_student import LoraStudent, load_engine, student_engine
from tokenomy.distill.student import Prediction, Student, load_student
from tokenomy.errors import invalid_request
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Usage
from tokenomy.providers.local.generation import LlamaEngine
from tokenomy.providers.local.responses import ResponseBuilder

DISTILLED_MODEL = "distilled"


AnyStudent = Student | EncoderStudent | LoraStudent


def load_students(config: GatewayConfig) -> dict[str, AnyStudent]:
    """Every student directory the config's local deployments name, loaded and checked."""
    students: dict[str, AnyStudent] = {}
    for model in config.models:
        for dep in model.deployments:
            if dep.provider != "local" or dep.model != DISTILLED_MODEL:
                continue
            if not dep.path:
                raise StudentError(f"model {model.name!r}: a 'distilled' deployment needs 'path' (a student directory)")
            if dep.path not in students:
                students[dep.path] = load_student(Path(dep.path).expanduser())
    return students


def lora_engines(loaded: dict[str, AnyStudent], n_threads: int | None) -> dict[str, LlamaEngine]:
    """A loaded llama.cpp engine (base model and adapter) per generative student; :class:`StudentError` if one fails."""
    engines: dict[str, LlamaEngine] = {}
    try:
        for path, student in loaded.items():
            if isinstance(student, LoraStudent):
                engines[path] = student_engine(student, name=f"distilled:{path}", n_threads=n_threads)
                load_engine(student, engines[path])
    except StudentError:
        for engine in engines.values():
            engine.close()
        raise
    return engines


def request_text(ctx: CallContext) -> str:
    """The text the student reads: the user messages (chat) or the prompt (completions)."""
    if ctx.endpoint is Endpoint.COMPLETIONS:
        prompt = ctx.body.get("prompt")
        text = prompt if isinstance(prompt, str) else ""
    else:
        text = text_of({"messages": ctx.body.get("messages")})
    if not text.strip():
        param = "prompt" if ctx.endpoint is Endpoint.COMPLETIONS else "messages"
        raise invalid_request("A distilled model needs some user text to label.", param=param)
    return text


def head_prediction(student: Student, text: str, vector: Any) -> Prediction:
    """A head student's answer for ``text`` from its MiniLM ``vector``."""
    (prediction,) = student.predict(np.asarray(vector, dtype=np.float32)[None, :], [text])
    return prediction


def encoder_prediction(student: EncoderStudent, text: str) -> tuple[Prediction, int]:
    """A fine-tuned encoder student's answer for ``text`` and the tokens it read (blocking: run off the loop)."""
    (prediction,) = student.predict_texts([text])
    return prediction, student.count_tokens(text)


def answer(ctx: CallContext, prediction: Prediction, tokens: int) -> Completion:
    """The label as the answer, with the confidence in the decisions (header) and the body."""
    ctx.decisions["confidence"] = round(prediction.confidence, 4)
    ctx.usage = Usage(prompt_tokens=tokens, completion_tokens=1)
    builder = ResponseBuilder(chat=ctx.endpoint is Endpoint.CHAT, model=ctx.model, logprobs=False)
    body = builder.whole(prediction.label, [], "stop", tokens, 1)
    body["tokenomy"] = {"confidence": prediction.confidence, "abstained": prediction.abstained}
    return Completion(body, ctx.usage)
