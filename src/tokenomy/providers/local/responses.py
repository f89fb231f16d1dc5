"""Pure builders of OpenAI response bodies and stream chunks for the embedded generator.

Chat answers are ``chat.completion`` objects (streamed as ``chat.completion.chunk``), text
completions are ``text_completion`` objects; logprobs use each endpoint's own OpenAI shape. The
stream always ends with a usage chunk (``choices: []``): the ledger needs it, and the HTTP edge
drops it unless the client asked for ``stream_options.include_usage``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tokenomy.providers.local.logits import TokenLogprob


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The OpenAI ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    """Chat ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}], "refusal": None}``."""
    return {
        "content": [
            {
                "token": e.token,
                "logprob": e.logprob,
                "bytes": e.bytes,
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, b, lp in e.top],
            }
            for e in entries
        ],
        "refusal": None,
    }


def completion_logprobs(entries: list[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """Legacy completion ``logprobs``: parallel lists of tokens, logprobs, alternatives and offsets."""
    offsets: list[int] = []
    at = offset
    for e in entries:
        offsets.append(at)
        at += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t: lp for t, _, lp in e.top} for e in entries],
        "text_offset": offsets,
    }


@dataclass(slots=True)
class ResponseBuilder:
    """Builds the bodies of one answer (``chat`` or ``completions``); streams keep their text offset."""

    chat: bool
    model: str
    logprobs: bool = False
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    _offset: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"

    def whole(
        self,
        text: str,
        entries: list[TokenLogprob],
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> dict[str, Any]:
        """A non-streaming response body."""
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
            choice["logprobs"] = chat_logprobs(entries) if self.logprobs else None
        else:
            choice["text"] = text
            choice["logprobs"] = completion_logprobs(entries) if self.logprobs else None
        choice["finish_reason"] = finish_reason
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [choice],
            "usage": usage_body(prompt_tokens, completion_tokens),
        }

    def first_chunk(self) -> dict[str, Any] | None:
        """Chat streams open with the assistant role (completions have no such chunk)."""
        if not self.chat:
            return None
        return self._chunk(
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        )

    def delta_chunk(self, text: str, entries: list[TokenLogprob]) -> dict[str, Any]:
        """A chunk carrying new text."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": text},
                "logprobs": chat_logprobs(entries) if self.logprobs else None,
                "finish_reason": None,
            }
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": completion_logprobs(entries, self._offset) if self.logprobs else None,
                "finish_reason": None,
            }
            self._offset += sum(len(e.token) for e in entries) if self.logprobs else 0
        return self._chunk(choice)

    def final_chunk(self, finish_reason: str) -> dict[str, Any]:
        """The chunk that carries ``finish_reason``."""
        if self.chat:
            return self._chunk({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason})
        return self._chunk({"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason})

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        """The last chunk: no choices, only usage."""
        body = self._chunk(None)
        body["usage"] = usage_body(prompt_tokens, completion_tokens)
        return body

    def _chunk(self, choice: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [choice] if choice is not None else [],
        }
