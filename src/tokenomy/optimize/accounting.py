"""Counting a chat prompt's tokens message by message, remembering recent messages.

A conversation resends its whole history every turn, so most messages of a request were counted
on an earlier turn; counts are kept by (tokenizer, message content) in a bounded LRU. The totals
follow OpenAI's chat accounting (``tokenomy.tokens.count.count_prompt``): a few tokens around
each message and the reply's priming.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from cachetools import LRUCache

from tokenomy.tokens.count import Encode, chat_prompt_text

PER_MESSAGE = 3
REPLY_PRIMING = 3


class MessageTokens:
    """Per-message token counts with a shared LRU (thread-safe)."""

    def __init__(self, capacity: int = 16_384) -> None:
        self._cache: LRUCache[tuple[int, bytes], int] = LRUCache(capacity)
        self._lock = threading.Lock()

    def message(self, encode: Encode, message: Any) -> int:
        """Tokens of one message, its framing included."""
        key = (id(encode), orjson.dumps(message))
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            found = sum(encode(piece) for piece in chat_prompt_text([message])) + PER_MESSAGE
            with self._lock:
                self._cache[key] = found
        return found

    def messages(self, encode: Encode, messages: list[Any]) -> list[int]:
        """Tokens of each message."""
        return [self.message(encode, m) for m in messages]

    def prompt(self, encode: Encode, messages: list[Any]) -> int:
        """Tokens of a whole chat prompt."""
        return sum(self.messages(encode, messages)) + REPLY_PRIMING
