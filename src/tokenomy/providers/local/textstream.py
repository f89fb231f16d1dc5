"""Turning generated token bytes into text deltas: UTF-8 reassembly and stop sequences.

Tokens can split a UTF-8 character, and a stop sequence can span tokens. :class:`TextAssembler`
holds back incomplete characters and any tail that could still become a stop sequence, so a
streamed delta never contains half a character or the start of a stop sequence. Per-token items
(logprobs) are released together with the text they produced.
"""

from __future__ import annotations

import codecs
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - a per-token item, e.g. a logprob entry


class TextAssembler(Generic[I]):
    """Feed token bytes; take back the text (and token items) that are safe to send."""

    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._stop = tuple(s for s in stop if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""  # everything decoded so far, stop sequence included
        self.sent = 0  # characters handed out
        self.stopped = False  # a stop sequence was found; nothing more will be emitted
        self._items: list[tuple[int, I]] = []  # (start offset in text, item) not yet released

    def feed(self, piece: bytes, item: I | None = None) -> tuple[str, list[I]]:
        """Add one token's bytes; return the text that can be sent now and the items it releases."""
        if self.stopped:
            return "", []
        start = len(self.text)
        if item is not None:
            self._items.append((start, item))
        self.text += self._decoder.decode(piece)
        cut = self._find_stop()
        if cut is not None:
            self.stopped = True
            return self._release(cut, drop_rest=True)
        return self._release(len(self.text) - self._held())

    def flush(self) -> tuple[str, list[I]]:
        """The end of generation: release everything still held back."""
        if self.stopped:
            return "", []
        self.text += self._decoder.decode(b"", final=True)
        return self._release(len(self.text), drop_rest=True)

    def visible(self) -> str:
        """The answer's text so far (without a stop sequence)."""
        return self.text[: self.sent]

    def _find_stop(self) -> int | None:
        found: int | None = None
        for stop in self._stop:
            at = self.text.find(stop, self.sent)
            if at != -1 and (found is None or at < found):
                found = at
        return found

    def _held(self) -> int:
        """Length of the longest unsent tail that is a proper prefix of a stop sequence."""
        tail = self.text[self.sent :]
        longest = 0
        for stop in self._stop:
            for k in range(min(len(stop) - 1, len(tail)), longest, -1):
                if tail.endswith(stop[:k]):
                    longest = k
                    break
        return longest

    def _release(self, end: int, drop_rest: bool = False) -> tuple[str, list[I]]:
        end = max(end, self.sent)
        out = self.text[self.sent : end]
        self.sent = end
        released = [item for start, item in self._items if start < end]
        self._items = [] if drop_rest else [(s, item) for s, item in self._items if s >= end]
        return out, released
