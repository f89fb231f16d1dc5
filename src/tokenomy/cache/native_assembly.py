"""Assemble a stream in another wire's own event format into the whole answer it amounts to.

Used by the cache to store native streams: Responses API events end with the whole
``response`` object; Anthropic Messages events are folded into the ``message`` they describe.
"""

from __future__ import annotations

import json
from typing import Any

_TEXT_DELTAS = (("text_delta", "text"), ("thinking_delta", "thinking"), ("signature_delta", "signature"))


class NativeAssembler:
    """Fold Responses API or Anthropic Messages events into one answer; ``complete`` when it ended well."""

    def __init__(self) -> None:
        self.whole: dict[str, Any] | None = None
        self.complete = False
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}

    def add(self, event: dict[str, Any]) -> None:
        """Fold one event in."""
        kind = event.get("type")
        if kind == "response.completed" and isinstance(event.get("response"), dict):
            self.whole, self.complete = event["response"], True
        elif kind == "message_start" and isinstance(event.get("message"), dict):
            self.whole = {**event["message"], "content": []}
        elif self.whole is not None and self.whole.get("type") == "message":
            self._message_event(kind, event)

    def _message_event(self, kind: Any, event: dict[str, Any]) -> None:
        assert self.whole is not None
        index = event.get("index")
        if kind == "content_block_start" and isinstance(index, int):
            self._blocks[index] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta" and index in self._blocks:
            block, delta = self._blocks[index], event.get("delta") or {}
            for field, key in (
                ("text_delta", "text"),
                ("thinking_delta", "thinking"),
                ("signature_delta", "signature"),
            ):
                if delta.get("type") == field:
                    block[key] = block.get(key, "") + str(delta.get(key) or "")
            if delta.get("type") == "input_json_delta":
                self._json.setdefault(index, []).append(str(delta.get("partial_json") or ""))
            elif delta.get("type") == "citations_delta":
                block.setdefault("citations", []).append(delta.get("citation"))
        elif kind == "message_delta":
            self.whole.update({k: v for k, v in (event.get("delta") or {}).items()})
            self.whole["usage"] = {**(self.whole.get("usage") or {}), **(event.get("usage") or {})}
        elif kind == "message_stop":
            for i, parts in self._json.items():
                try:
                    self._blocks[i]["input"] = json.loads("".join(parts) or "{}")
                except ValueError:
                    return  # not a valid answer: leave it incomplete
            self.whole["content"] = [self._blocks[i] for i in sorted(self._blocks)]
            self.complete = True
