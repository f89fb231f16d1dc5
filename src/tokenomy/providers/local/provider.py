"""``provider: local`` — the embedded backend: llama.cpp generation and ONNX embeddings in process.

Only the models that some local deployment names are loaded. Loading happens in :meth:`start`,
off the event loop, followed by a warm-up call; :meth:`ready` turns true after that. Chat and
completions go to one :class:`~tokenomy.providers.local.generation.LlamaEngine` (one worker
thread, bounded queue); embeddings go through a
:class:`~tokenomy.providers.local.batcher.MicroBatcher` in front of the ONNX model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.distill.encoder_student import EncoderStudent
from tokenomy.distill.lora_student import LoraStudent
from tokenomy.errors import GatewayError, invalid_request
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.providers.local import embedding_api, students
from tokenomy.providers.local.batcher import MicroBatcher
from tokenomy.providers.local.catalog import CATALOG, DISTILLED_MODEL, EMBEDDING_MODEL, GENERATION_MODEL, lookup
from tokenomy.providers.local.cpus import usable_cpus
from tokenomy.providers.local.embeddings import Embedded, EmbedItem, MiniLMEmbedder
from tokenomy.providers.local.generation import Delta, Finished, GenerationHandle, LlamaEngine
from tokenomy.providers.local.logits import TokenLogprob
from tokenomy.providers.local.params import ChatPrompt, TextPrompt, parse_chat, parse_completion
from tokenomy.providers.local.responses import ResponseBuilder
from tokenomy.redaction import redact
from tokenomy.telemetry.metrics import record_model_load
from tokenomy.tokens.decode import client_encoding, decoder

log = logging.getLogger("tokenomy.local")


class LocalProvider:
    """The embedded models behind the Provider protocol."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        names = {dep.model for model in config.models for dep in model.deployments if dep.provider == "local"}
        for name in sorted(names):
            lookup(name)  # fail fast on a model that is not embedded
        local = config.local
        self.generator: LlamaEngine | None = None
        self.embedder: MiniLMEmbedder | None = None
        self.batcher: MicroBatcher[EmbedItem, Embedded] | None = None
        if GENERATION_MODEL in names:
            self.generator = LlamaEngine(
                local.generation.model_path,
                name=GENERATION_MODEL,
                n_ctx=local.generation.n_ctx,
                n_threads=local.generation.n_threads,
                max_queue=local.generation.max_queue,
                repeat_penalty=local.generation.repeat_penalty,
                loop_guard=local.generation.loop_guard,
                parallel=None if local.generation.parallel == "auto" else local.generation.parallel,
                select_variant=local.generation.model_path is None and local.generation.select_variant,
            )
        # Distilled students load here, so a broken one stops the gateway at start-up.
        self.students = students.load_students(config)
        # A generative (LoRA) student gets its own llama.cpp engine, loaded here for the same reason.
        self.lora_engines = students.lora_engines(self.students, local.generation.n_threads)
        head_students = any(not isinstance(s, EncoderStudent | LoraStudent) for s in self.students.values())
        if EMBEDDING_MODEL in names or head_students:
            concurrency, n_threads = embedding_threads(local.embeddings.concurrency, local.embeddings.n_threads)
            self.embedder = MiniLMEmbedder(n_threads=n_threads, arithmetic=local.embeddings.arithmetic)
            self.batcher = MicroBatcher(
                self.embedder.embed,
                max_batch_size=local.embeddings.max_batch_size,
                max_wait_ms=local.embeddings.max_wait_ms,
                max_queue=local.embeddings.max_queue,
                name=EMBEDDING_MODEL,
                concurrency=concurrency,
            )
        self._ready = False

    async def start(self) -> None:
        """Load the referenced models off the event loop, warm them up, then report ready."""
        loads = []
        if self.generator is not None:
            loads.append(self._load(GENERATION_MODEL, self.generator.load))
        if self.embedder is not None:
            loads.append(self._load(EMBEDDING_MODEL, self._load_embedder))  # students embed with it too
        await asyncio.gather(*loads)
        self._ready = True

    async def close(self) -> None:
        """Stop the batcher and the generation thread, and free the models."""
        self._ready = False
        if self.batcher is not None:
            await self.batcher.close()
        if self.generator is not None:
            await asyncio.to_thread(self.generator.close)
        for engine in self.lora_engines.values():
            await asyncio.to_thread(engine.close)
        if self.embedder is not None:
            self.embedder.close()

    def ready(self) -> bool:
        """True once every referenced model is loaded and warmed up."""
        return self._ready

    def catalog(self) -> list[dict[str, Any]]:
        """The embedded models with their capabilities, and whether this gateway loaded each."""
        entries = []
        for name, model in CATALOG.items():
            entry = model.describe()
            loaded = {GENERATION_MODEL: self.generator, EMBEDDING_MODEL: self.embedder}.get(name, self.students or None)
            entry["loaded"] = loaded is not None
            if name == GENERATION_MODEL:
                entry["context_length"] = self._config.local.generation.n_ctx
                if self.generator is not None:
                    entry["parallel"] = self.generator.parallel  # requests decoded together
                if self.generator is not None and self.generator.variant is not None:
                    entry["variant"] = self.generator.variant.describe()
            entries.append(entry)
        return entries

    async def send(self, ctx: CallContext, deployment: Deployment) -> Response:
        """Serve ``ctx`` on the embedded model that ``deployment.model`` names."""
        try:
            model = lookup(deployment.model)
        except ValueError as exc:
            raise GatewayError(500, redact(str(exc)), "server_error") from None
        if not model.supports(ctx.endpoint):
            raise invalid_request(f"model {ctx.model} does not support {ctx.endpoint}", param="model")
        if model.name == DISTILLED_MODEL:
            return await self._classify(ctx, deployment)
        if ctx.endpoint is Endpoint.EMBEDDINGS:
            return await self._embed(ctx)
        return await self._generate(ctx)

    # --- loading -------------------------------------------------------------------------------

    async def _load(self, name: str, load: Any) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(load)
        seconds = time.perf_counter() - started
        record_model_load(name, seconds)
        log.info("local model %s loaded and warmed up in %.2f s", name, seconds)

    def _load_embedder(self) -> None:
        assert self.embedder is not None
        self.embedder.load()
        self.embedder.embed(["warm-up"])

    # --- embeddings ----------------------------------------------------------------------------

    async def _embed(self, ctx: CallContext) -> Completion:
        if self.batcher is None or self.embedder is None or not self.embedder.loaded:
            raise GatewayError(503, f"The model {ctx.model!r} is not loaded.", "server_overloaded", code="overloaded")
        if ctx.stream:
            raise invalid_request("Embeddings cannot be streamed.", param="stream")
        encoding = client_encoding(ctx.requested_model, self._config.local.embeddings.token_encoding)
        request = embedding_api.parse_request(ctx.body, decoder(encoding))
        results = await self.batcher.submit(request.items)
        tokens = sum(r.tokens for r in results)
        body = embedding_api.response_body(ctx.model, [r.vector for r in results], tokens, request.encoding_format)
        ctx.usage = Usage(prompt_tokens=tokens)
        return Completion(body, ctx.usage)

    # --- distilled students -------------------------------------------------------------------

    async def _classify(self, ctx: CallContext, deployment: Deployment) -> Response:
        student = self.students.get(deployment.path or "")
        if isinstance(student, LoraStudent):  # a generative student answers with text, like the generator
            engine = self.lora_engines[deployment.path or ""]
            return await self._generate(ctx, engine, student.max_answer_tokens, greedy=True)
        head = not isinstance(student, EncoderStudent)
        if student is None or (head and (self.batcher is None or self.embedder is None or not self.embedder.loaded)):
            raise GatewayError(503, f"The model {ctx.model!r} is not loaded.", "server_overloaded", code="overloaded")
        if ctx.stream:
            raise invalid_request("A distilled model answers whole responses; set stream to false.", param="stream")
        text = students.request_text(ctx)
        if isinstance(student, EncoderStudent):
            prediction, tokens = await asyncio.to_thread(students.encoder_prediction, student, text)
            return students.answer(ctx, prediction, tokens)
        assert self.batcher is not None
        (embedded,) = await self.batcher.submit([text])
        return students.answer(ctx, students.head_prediction(student, text, embedded.vector), embedded.tokens)

    # --- chat and completions ------------------------------------------------------------------

    async def _generate(
        self, ctx: CallContext, engine: LlamaEngine | None = None, default: int | None = None, greedy: bool = False
    ) -> Response:
        """Generate on ``engine`` (default: the embedded generator); ``greedy``: temperature 0 whatever was asked."""
        engine = engine or self.generator
        if engine is None or engine.n_vocab == 0:
            raise GatewayError(503, f"The model {ctx.model!r} is not loaded.", "server_overloaded", code="overloaded")
        default = default or self._config.local.generation.max_tokens_default
        chat = ctx.endpoint is Endpoint.CHAT
        prompt: ChatPrompt | TextPrompt
        if chat:
            if not engine.supports_chat:
                raise invalid_request(f"model {ctx.model} does not support chat", param="model")
            prompt, params = parse_chat(ctx.body, default, engine.n_vocab)
        else:
            prompt, params = parse_completion(ctx.body, default, engine.n_vocab)
        if greedy:
            params = dataclasses.replace(params, temperature=0.0, top_p=1.0)
        handle = engine.submit(prompt, params)
        try:
            started = await handle.first()
        except BaseException:
            handle.cancel()
            raise
        builder = ResponseBuilder(chat=chat, model=ctx.model, logprobs=params.top_logprobs is not None)
        if ctx.stream:
            chunks = _stream(handle, builder, ctx)

            async def aclose() -> None:
                handle.cancel()
                with contextlib.suppress(RuntimeError):
                    await chunks.aclose()

            return Stream(chunks, aclose)
        return await _whole(handle, builder, ctx, started.prompt_tokens)


async def _whole(
    handle: GenerationHandle, builder: ResponseBuilder, ctx: CallContext, prompt_tokens: int
) -> Completion:
    """Collect a whole answer; stop the worker if the caller goes away first."""
    parts: list[str] = []
    entries: list[TokenLogprob] = []
    finished: Finished | None = None
    try:
        async for event in handle.events():
            if isinstance(event, Delta):
                parts.append(event.text)
                entries.extend(event.logprobs)
            elif isinstance(event, Finished):
                finished = event
    finally:
        handle.cancel()  # a no-op once finished
    if finished is None or finished.finish_reason == "cancelled":
        raise GatewayError(503, "The local model stopped before answering.", "server_overloaded", code="overloaded")
    ctx.usage = Usage(prompt_tokens=finished.prompt_tokens, completion_tokens=finished.completion_tokens)
    body = builder.whole("".join(parts), entries, finished.finish_reason, prompt_tokens, finished.completion_tokens)
    return Completion(body, ctx.usage)


async def _stream(
    handle: GenerationHandle, builder: ResponseBuilder, ctx: CallContext
) -> AsyncGenerator[dict[str, Any], None]:
    """OpenAI chunks as tokens arrive; closing the iterator stops generation at the next token."""
    try:
        first = builder.first_chunk()
        if first is not None:
            yield first
        async for event in handle.events():
            if isinstance(event, Delta):
                yield builder.delta_chunk(event.text, event.logprobs)
            elif isinstance(event, Finished):
                if event.finish_reason == "cancelled":
                    raise GatewayError(503, "The local model stopped.", "server_overloaded", code="overloaded")
                ctx.usage = Usage(prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens)
                yield builder.final_chunk(event.finish_reason)
                yield builder.usage_chunk(event.prompt_tokens, event.completion_tokens)
    finally:
        handle.cancel()


def embedding_threads(concurrency: int | None, n_threads: int | None) -> tuple[int, int]:
    """Batches at once (default one) and ONNX threads per batch (default: the usable CPUs over that).

    One batch at a time on every CPU is the default: on a quiet 2-core machine it gave the higher
    throughput up to 32 clients and the lower single-request latency; several one-thread batches
    at once use less CPU per embedding and won at 64 clients (docs/benchmarks.md).
    """
    if concurrency is None:
        concurrency = 1
    return concurrency, n_threads or max(1, usable_cpus() // concurrency)
