"""What happens to each generated token of one answer, whichever loop decoded it.

End-of-sequence, the loop guard, text assembly with stop strings (and logprobs), the token budget
and the events posted to the caller: shared by the one-request-at-a-time loop and by the loop
that decodes several requests together (``batched.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from tokenomy.providers.local.logits import LogprobRecorder, TokenLogprob
from tokenomy.providers.local.loop_guard import CHECK_EVERY, repeating
from tokenomy.providers.local.textstream import TextAssembler

if TYPE_CHECKING:
    from tokenomy.providers.local.generation import GenerationHandle

log = logging.getLogger("tokenomy.local")


class Counters(Protocol):
    """The engine's running totals, read by tests and benchmarks while answers are generated."""

    generated_tokens: int
    loops_stopped: int


class TokenSink:
    """One answer's tokens in, :class:`Delta` events out; :attr:`reason` once it should stop."""

    def __init__(
        self,
        llm: Any,
        job: GenerationHandle,
        budget: int,
        stop: tuple[str, ...],
        *,
        counters: Counters,
        loop_guard: bool,
        recorder: LogprobRecorder | None = None,
    ) -> None:
        self.llm = llm
        self.counters = counters
        self.job = job
        self.budget = budget
        self.loop_guard = loop_guard
        self.recorder = recorder
        self.assembler: TextAssembler[TokenLogprob] = TextAssembler(stop)
        self.produced = 0
        self.generated: list[int] = []
        self.reason: str | None = None  # set when the answer is over

    def take(self, token: int) -> bool:
        """Handle one sampled token; True when the answer is over (see :attr:`reason`)."""
        from llama_cpp.llama_cpp import llama_vocab_is_eog

        from tokenomy.providers.local.generation import Delta

        llm, job = self.llm, self.job
        if job.cancelled.is_set():
            return self._end("cancelled")
        if llama_vocab_is_eog(llm._model.vocab, token):
            return self._end("stop")
        self.produced += 1
        self.counters.generated_tokens += 1
        if self.loop_guard:
            self.generated.append(token)
            if self.produced % CHECK_EVERY == 0 and repeating(self.generated):
                self.counters.loops_stopped += 1
                log.debug("local generation stopped: the answer repeats itself")
                return self._end("stop")
        piece: bytes = llm.detokenize([token])
        entry = self.recorder.entry(llm, token, piece) if self.recorder is not None else None
        text, items = self.assembler.feed(piece, entry)
        if text or items:
            job.post(Delta(text, items))
        if self.assembler.stopped:
            return self._end("stop")
        if self.produced >= self.budget:
            return self._end("length")
        return False

    def finish(self) -> str:
        """Flush held-back text (unless cancelled); the finish reason (``length`` if none was set)."""
        from tokenomy.providers.local.generation import Delta

        reason = self.reason or "length"
        if reason != "cancelled":
            text, items = self.assembler.flush()
            if text or items:
                self.job.post(Delta(text, items))
        return reason

    def _end(self, reason: str) -> bool:
        self.reason = reason
        return True
