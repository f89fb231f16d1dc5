"""Decoding several generation requests together: one llama.cpp step advances every sequence.

With ``local.generation.parallel`` > 1 the engine's worker thread keeps up to that many answers
in flight, each in its own sequence of one llama.cpp context (one KV buffer of ``n_ctx``
cells per sequence, shared). A prompt is read as soon as its request arrives; then each step
is ONE ``llama_decode`` holding the next token of every running answer, and each answer samples
from its own logits with its own sampler chain (the same chain, in the same order, as
llama-cpp-python's ``Llama.generate``: penalties, top-k, typical, top-p, min-p, temperature,
then a seeded draw, or greedy at temperature 0).

A prompt is not read again where the KV buffer already holds its beginning: a finished answer's
cells stay with its sequence until the slot is reused, and a new prompt starts from the longest
prefix it shares with any sequence, running or finished (for a chat model the template's default
system prompt at least). llama-cpp-python's one-at-a-time path reuses the previous prompt's
prefix the same way; without this the batched engine read every prompt whole, which with q4_1
weights made up a third of its CPU per token.

Requests that need what the chain cannot do per sequence here (a grammar, logit bias or
logprobs) wait until the running answers finish and then run alone on the ordinary path.
How much this gains depends on the model file's kernels: see docs/benchmarks.md "Decoding
several requests together".
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import queue
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenomy.errors import GatewayError
from tokenomy.providers.local.params import GenerationParams
from tokenomy.providers.local.sink import TokenSink
from tokenomy.redaction import redact

if TYPE_CHECKING:
    from tokenomy.providers.local.generation import GenerationHandle, LlamaEngine

log = logging.getLogger("tokenomy.local")

TYPICAL_P = 1.0  # llama-cpp-python's default: off
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size


# ``local.generation.parallel: auto``: sequences decoded together when the model file's weights are
# floating point. Measured on SmolLM2-135M (docs/benchmarks.md): with f16 weights llama.cpp's
# multi-row kernels halve the CPU per token from 4 answers on; with q4_1 and q8_0 they gain little
# or lose. Four, not eight: each sequence holds its own n_ctx KV cells (~45 MB at 2,048 for this
# model), and 4 gave 1.8x where 8 gave 2.25x.
AUTO_SEQUENCES = 4
# llama.cpp's LLAMA_FTYPE values of files whose weights are all (or mostly) floating point
FLOAT_FILE_TYPES = {0: "f32", 1: "f16", 32: "bf16"}


def auto_sequences(file_type: str | None, description: str = "") -> int:
    """Sequences for ``parallel: auto``, from the GGUF's ``general.file_type`` (else its llama.cpp description)."""
    if file_type is not None:
        try:
            return AUTO_SEQUENCES if int(file_type) in FLOAT_FILE_TYPES else 1
        except ValueError:
            pass
    words = description.upper().split()  # e.g. "llama 256M F16"
    return AUTO_SEQUENCES if words and words[-1] in {"F16", "BF16", "F32"} else 1


def model_sequences(llm: Any) -> int:
    """:func:`auto_sequences` for a loaded ``llama_cpp.Llama``."""
    import llama_cpp

    buffer = ctypes.create_string_buffer(128)
    llama_cpp.llama_model_desc(llm._model.model, buffer, len(buffer))
    return auto_sequences(llm.metadata.get("general.file_type"), buffer.value.decode("utf-8", "replace"))


def batchable(params: GenerationParams) -> bool:
    """True when the request's sampling fits a per-sequence sampler chain."""
    return params.grammar is None and params.top_logprobs is None and not params.logit_bias


@dataclass(eq=False)
class Sequence:
    """One answer in flight: its sequence id, next position, sampler chain and token sink."""

    seq: int
    pos: int
    sampler: Any
    sink: TokenSink
    prompt_tokens: int
    tokens: list[int]  # what the sequence's KV cells hold, position by position
    next_token: int = -1


class SequenceBatch:
    """A llama.cpp context holding ``slots`` sequences, decoded one token each per step."""

    def __init__(self, llm: Any, slots: int, n_ctx: int, n_threads: int) -> None:
        import llama_cpp

        self.llm = llm
        self.n_ctx = n_ctx
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * slots
        params.n_batch = params.n_ubatch = min(n_ctx, 512)
        params.n_seq_max = slots
        # One KV buffer shared by the sequences: measured with the F16 file, separate per-sequence
        # buffers lost the gain (1.02x CPU per token at 4 answers instead of 1.73x). llama.cpp then
        # warns that the context exceeds the training length; each sequence still stops at n_ctx.
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = n_threads
        self.ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context for batched decoding")
        self.n_batch = int(params.n_batch)
        self.batch = llama_cpp.llama_batch_init(max(self.n_batch, slots), 0, 1)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.free = list(range(slots))
        self.held: dict[int, list[int]] = {}  # per sequence, running or free: the tokens its cells hold
        self.steps = 0  # llama_decode calls that advanced running answers (tests read it)
        self.reused = 0  # prompt tokens not read again because their cells were kept (tests read it)

    def close(self) -> None:
        """Free the context and the batch."""
        import llama_cpp

        if self.ctx:
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None

    def open(self, tokens: list[int], params: GenerationParams, sink: TokenSink, repeat_penalty: float) -> Sequence:
        """Read the prompt into a free sequence (past the prefix its cells may share) and sample its first token."""
        slot, kept = self._take_slot(tokens)
        seq = Sequence(slot, kept, self._sampler(params, repeat_penalty), sink, len(tokens), tokens[:kept])
        self.held[slot] = seq.tokens
        self.reused += kept
        try:
            last = 0
            for start in range(kept, len(tokens), self.n_batch):
                chunk = tokens[start : start + self.n_batch]
                for k, token in enumerate(chunk):
                    self._put(k, token, start + k, seq.seq, start + k == len(tokens) - 1)
                self._decode(len(chunk))
                seq.tokens.extend(chunk)
                last = len(chunk) - 1
            seq.pos = len(tokens)
            seq.next_token = self._sample(seq, last)
        except BaseException:
            self.release(seq, keep=False)
            raise
        return seq

    def _take_slot(self, tokens: list[int]) -> tuple[int, int]:
        """A free sequence for ``tokens`` and how many of its first positions already hold them.

        The free sequence sharing the longest prefix keeps its cells up to there; when a running
        one shares more, its cells are shared into the free one (one KV buffer: cells can belong
        to several sequences). At least the last prompt token is always read, for its logits.
        """
        import llama_cpp

        limit = len(tokens) - 1
        slot = max(self.free, key=lambda s: shared_prefix(self.held.get(s, []), tokens, limit))
        kept = shared_prefix(self.held.get(slot, []), tokens, limit)
        self.free.remove(slot)
        others = [s for s in self.held if s not in self.free and s != slot]
        source = max(others, key=lambda s: shared_prefix(self.held[s], tokens, limit), default=None)
        if source is not None and shared_prefix(self.held[source], tokens, limit) > kept:
            llama_cpp.llama_memory_seq_rm(self.memory, slot, -1, -1)
            kept = shared_prefix(self.held[source], tokens, limit)
            llama_cpp.llama_memory_seq_cp(self.memory, source, slot, 0, kept)
        else:
            llama_cpp.llama_memory_seq_rm(self.memory, slot, kept, -1)
        return slot, kept

    def step(self, running: list[Sequence]) -> None:
        """Decode the pending token of every running sequence at once and sample each one's next."""
        for k, seq in enumerate(running):
            self._put(k, seq.next_token, seq.pos, seq.seq, True)
            seq.tokens.append(seq.next_token)
            seq.pos += 1
        self._decode(len(running))
        self.steps += 1
        for k, seq in enumerate(running):
            seq.next_token = self._sample(seq, k)

    def release(self, seq: Sequence, keep: bool = True) -> None:
        """Free the sequence's slot and sampler; its KV cells stay for a later prompt to start from.

        ``keep=False`` (after a failed decode) forgets the cells too.
        """
        import llama_cpp

        if not keep:
            llama_cpp.llama_memory_seq_rm(self.memory, seq.seq, -1, -1)
            self.held.pop(seq.seq, None)
        if seq.sampler is not None:
            llama_cpp.llama_sampler_free(seq.sampler)
            seq.sampler = None
        self.free.append(seq.seq)

    def _put(self, k: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        b.token[k], b.pos[k], b.n_seq_id[k], b.logits[k] = token, pos, 1, logits
        b.seq_id[k][0] = seq

    def _decode(self, n: int) -> None:
        import llama_cpp

        self.batch.n_tokens = n
        code = llama_cpp.llama_decode(self.ctx, self.batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")

    def _sample(self, seq: Sequence, index: int) -> int:
        import llama_cpp

        return int(llama_cpp.llama_sampler_sample(seq.sampler, self.ctx, index))

    def _sampler(self, p: GenerationParams, repeat_penalty: float) -> Any:
        import llama_cpp

        from tokenomy.providers.local.generation import MIN_P, TOP_K

        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            llama_cpp.llama_sampler_chain_add(chain, sampler)

        # the arguments exactly as llama-cpp-python's own chain passes them (its binding's order)
        n_vocab = int(self.llm.n_vocab())
        penalties = llama_cpp.llama_sampler_init_penalties(
            n_vocab, PENALTY_LAST_N, repeat_penalty, p.frequency_penalty, p.presence_penalty
        )
        add(penalties)
        if p.temperature <= 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
            return chain
        add(llama_cpp.llama_sampler_init_top_k(TOP_K))
        add(llama_cpp.llama_sampler_init_typical(TYPICAL_P, 1))
        add(llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
        add(llama_cpp.llama_sampler_init_min_p(MIN_P, 1))
        add(llama_cpp.llama_sampler_init_temp(p.temperature))
        seed = p.seed if p.seed is not None else random.getrandbits(32)
        add(llama_cpp.llama_sampler_init_dist(ctypes.c_uint32(seed).value))
        return chain


def shared_prefix(held: list[int], tokens: list[int], limit: int) -> int:
    """How many leading tokens ``held`` and ``tokens`` share, at most ``limit``."""
    n = 0
    for a, b in zip(held, tokens[:limit], strict=False):
        if a != b:
            break
        n += 1
    return n


def work(engine: LlamaEngine, batch: SequenceBatch) -> None:
    """The worker loop with batched decoding (runs on the engine's one llama.cpp thread)."""
    from tokenomy.providers.local.generation import Failed, Finished

    running: list[Sequence] = []
    held: GenerationHandle | None = None  # a request that must run alone, after the running ones

    def end(seq: Sequence) -> None:
        running.remove(seq)
        batch.release(seq)
        job = seq.sink.job
        reason = seq.sink.finish()
        job.post(Finished(reason, seq.prompt_tokens, seq.sink.produced))
        engine.job_done(job)

    try:
        while not engine.closing.is_set():
            while held is None and batch.free:
                try:
                    job = engine.next_job(block=not running)
                except queue.Empty:
                    break
                if job is None:
                    return
                if job.cancelled.is_set():
                    job.post(Failed(asyncio.CancelledError()))
                    engine.job_done(job)
                elif not batchable(job.params):
                    held = job
                else:
                    seq = _start(engine, batch, job)
                    if seq is not None:
                        running.append(seq)
                        if seq.sink.take(seq.next_token):
                            end(seq)
            if not running:
                if held is not None:
                    engine.run_alone(held)
                    held = None
                continue
            try:
                batch.step(running)
            except Exception as exc:  # the answers in flight fail; the worker keeps serving
                log.exception("batched local generation failed")
                failed = GatewayError(500, redact(f"Local generation failed: {exc}"), "server_error")
                for seq in list(running):
                    running.remove(seq)
                    batch.release(seq, keep=False)
                    seq.sink.job.post(Failed(failed))
                    engine.job_done(seq.sink.job)
                continue
            for seq in list(running):
                if seq.sink.take(seq.next_token):
                    end(seq)
    finally:
        for seq in list(running):
            seq.sink.job.cancel()
            end(seq)
        if held is not None:
            held.post(Failed(asyncio.CancelledError()))
            engine.job_done(held)
        batch.close()


def _start(engine: LlamaEngine, batch: SequenceBatch, job: GenerationHandle) -> Sequence | None:
    """Read a request's prompt into a free sequence; errors are posted to the request."""
    from tokenomy.providers.local.generation import Failed, Finished, Started

    prepared = engine.prepare(job)
    if prepared is None:
        engine.job_done(job)
        return None
    tokens, stop = prepared
    job.post(Started(len(tokens)))
    budget = min(job.params.max_tokens, batch.n_ctx - len(tokens))
    if budget <= 0:
        job.post(Finished("length", len(tokens), 0))
        engine.job_done(job)
        return None
    sink = TokenSink(engine._llm, job, budget, job.params.stop + stop, counters=engine, loop_guard=engine.loop_guard)
    try:
        return batch.open(tokens, job.params, sink, engine.repeat_penalty)
    except Exception as exc:
        log.exception("batched local generation failed")
        job.post(Failed(GatewayError(500, redact(f"Local generation failed: {exc}"), "server_error")))
        engine.job_done(job)
        return None
