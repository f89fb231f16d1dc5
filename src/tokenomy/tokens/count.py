"""Counting tokens when a provider does not report them.

Exact where an offline tokenizer for the model exists (OpenAI models through tiktoken's
encodings, embedded GGUF models through llama.cpp's own vocabulary); otherwise an approximation
with ``cl100k_base``, flagged as ``approx`` in the ledger (see docs/ledger.md).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from tokenomy.tokens.tiktoken_offline import seed_cache

Encode = Callable[[str], int]

# OpenAI's chat format adds a few tokens around each message and primes the reply.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


@functools.cache
def _tiktoken_encoding(name: str) -> Any:
    seed_cache()
    import tiktoken

    return tiktoken.get_encoding(name)


def _openai_encoding_name(model: str) -> str | None:
    """tiktoken's encoding for an OpenAI model name, or ``None`` when it is not an OpenAI model."""
    seed_cache()
    import tiktoken

    try:
        return str(tiktoken.encoding_name_for_model(model))
    except KeyError:
        return None


class TokenCounter:
    """Count tokens for a served model; ``count`` returns ``(tokens, source)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gguf: dict[str, Encode] = {}

    def counter_for(self, model: str, provider: str | None, gguf_path: str | None = None) -> tuple[Encode, str]:
        """A text-to-count function for the model and whether it is exact (``counted``) or ``approx``."""
        if provider == "local":
            if gguf_path is None:
                from tokenomy.providers.local.generation import default_model_path

                gguf_path = str(default_model_path())
            encode = self._gguf_encoder(gguf_path)
            if encode is not None:
                return encode, "counted"
        name = _openai_encoding_name(model)
        if name is not None:
            enc = _tiktoken_encoding(name)
            return (lambda text: len(enc.encode_ordinary(text))), "counted"
        enc = _tiktoken_encoding("cl100k_base")
        return (lambda text: len(enc.encode_ordinary(text))), "approx"

    def _gguf_encoder(self, path: str) -> Encode | None:
        with self._lock:
            if path not in self._gguf:
                try:
                    from llama_cpp import Llama

                    from tokenomy.providers.local import llama_quiet

                    llama_quiet.install()  # loading must not redirect the process's stdout/stderr
                    vocab = Llama(model_path=path, vocab_only=True, verbose=False)
                except Exception:  # an unreadable model: fall back to the approximation
                    return None
                self._gguf[path] = lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=False))
            return self._gguf[path]


def chat_prompt_text(messages: Any) -> list[str]:
    """The text pieces of chat messages (roles, names, string or text-part contents, tool calls)."""
    pieces: list[str] = []
    if not isinstance(messages, list):
        return pieces
    for message in messages:
        if not isinstance(message, dict):
            continue
        pieces.append(str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            pieces.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
        if message.get("name"):
            pieces.append(str(message["name"]))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                pieces.append(str(call["function"].get("name", "")) + str(call["function"].get("arguments", "")))
    return pieces


def count_prompt(encode: Encode, endpoint: str, body: dict[str, Any]) -> int:
    """Prompt tokens of a request body, following OpenAI's accounting for chat messages."""
    if endpoint == "chat":
        messages = body.get("messages")
        n = len(messages) if isinstance(messages, list) else 0
        return sum(encode(piece) for piece in chat_prompt_text(messages)) + _PER_MESSAGE * n + _REPLY_PRIMING
    key = "prompt" if endpoint == "completions" else "input"
    value = body.get(key)
    if isinstance(value, str):
        return encode(value)
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return len(value)  # already tokens
        return sum(len(item) if isinstance(item, list) else encode(str(item)) for item in value)
    return 0
