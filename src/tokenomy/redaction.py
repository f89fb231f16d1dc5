"""Removing secrets from text that leaves the gateway: error messages, error headers and logs.

Upstream error text is relayed to clients (it usually says what was wrong with the request),
and an upstream may echo what it received, the gateway's upstream key included. Every such
text passes through :func:`redact`, which removes every configured secret value (registered
when a gateway starts, see :func:`register_config_secrets`) and anything shaped like an API key
or a bearer token. Log records are redacted by a record factory installed once
(:func:`install_log_redaction`), so every handler sees the redacted text.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from tokenomy.config.base import SecretRef

MASK = "[redacted]"
MIN_SECRET_LENGTH = 6
"""Shorter configured values are not masked: they would redact ordinary words."""

_SHAPES = re.compile(
    "|".join(
        (
            r"\bsk-[A-Za-z0-9_\-]{8,}",  # OpenAI / Anthropic (sk-ant-...) and most OpenAI-compatible keys
            r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}",
            r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
            r"\bAIza[0-9A-Za-z_\-]{30,}",  # Google API key
            r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub token
            r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack token
            r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # a JWT
        )
    )
)
# "api_key": "...", x-api-key: ..., password=..., token=...: keep the name, mask the value
_NAMED = re.compile(
    r"(?i)((?:x-)?api[-_]?key|authorization|access[-_]?token|secret|password|passwd)"
    r"([\"']?\s*[:=]\s*[\"']?)([^\s\"',;&}]{4,})"
)
_URL_PASSWORD = re.compile(r"(://[^\s:/@]+:)([^\s@/]+)(@)")

# Substrings without which the patterns above cannot match. Checking them first (a few C-speed
# ``in`` tests) spares most texts, e.g. every access-log line, four regex scans. Exact for ASCII
# text only: under IGNORECASE some non-ASCII letters match ASCII ones (the Kelvin sign matches
# "k"), so other text always goes through the patterns.
_SHAPE_HINTS = ("sk-", "AKIA", "AIza", "gh", "xox", "eyJ")
_SHAPE_HINTS_LOWER = ("bearer",)
_NAMED_HINTS_LOWER = (
    "apikey", "api-key", "api_key", "authorization", "accesstoken", "access-token", "access_token",
    "secret", "passw",
)  # fmt: skip


class Redactor:
    """Masks known secret values and key-shaped strings in text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._known: re.Pattern[str] | None = None
        self._ordered: tuple[str, ...] = ()
        self.generation = 0
        """Counts registrations: results remembered under an older generation are stale."""

    def add(self, *values: str | None) -> None:
        """Register secret values (empty, missing and very short ones are ignored)."""
        new = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH} - self._values
        if not new:
            return
        with self._lock:
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)  # longest first: no partial masks
            self._known = re.compile("|".join(re.escape(v) for v in ordered))
            self._ordered = tuple(ordered)
            self.generation += 1

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked."""
        if not text:
            return text
        known, values = self._known, self._ordered
        if known is not None and any(v in text for v in values):
            text = known.sub(MASK, text)
        if not text.isascii():
            return _patterns(text)
        lower = text.lower()
        if any(h in text for h in _SHAPE_HINTS) or any(h in lower for h in _SHAPE_HINTS_LOWER):
            text = _SHAPES.sub(_mask_shape, text)
        if any(h in lower for h in _NAMED_HINTS_LOWER):
            text = _NAMED.sub(_mask_named, text)
        if "://" in text and "@" in text:
            text = _URL_PASSWORD.sub(_mask_url_password, text)
        return text


def _patterns(text: str) -> str:
    text = _SHAPES.sub(_mask_shape, text)
    text = _NAMED.sub(_mask_named, text)
    return _URL_PASSWORD.sub(_mask_url_password, text)


def _mask_named(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + MASK


def _mask_url_password(match: re.Match[str]) -> str:
    return match.group(1) + MASK + match.group(3)


def _mask_shape(match: re.Match[str]) -> str:
    found = match.group(0)
    if found[:6].lower() == "bearer":
        return found.split(None, 1)[0] + " " + MASK
    return MASK


REDACTOR = Redactor()
"""The process's redactor (secrets of every gateway started in this process)."""


def redact(text: str) -> str:
    """``text`` with every configured secret and key-shaped string masked."""
    return REDACTOR(text)


class Redacted(str):
    """Text already redacted (e.g. an access-log line built from redacted values): the log record
    factory passes it through as it is instead of scanning it again."""

    __slots__ = ()


_MEMO: dict[str, str] = {}
_MEMO_MAX = 4096
_memo_generation = 0


def redact_json(value: Any) -> Any:
    """Parsed JSON with every string in it redacted (keys kept): an upstream's error object."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, dict):
        return {key: redact_json(item) for key, item in value.items()}
    return value


def redact_value(value: str) -> str:
    """``redact(value)`` for a short value that repeats (a model name, a tenant), remembered."""
    global _memo_generation
    if _memo_generation != REDACTOR.generation:  # a secret registered since: forget everything
        _MEMO.clear()
        _memo_generation = REDACTOR.generation
    found = _MEMO.get(value)
    if found is None:
        found = redact(value)
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        _MEMO[value] = found
    return found


def config_secrets(config: BaseModel) -> list[str]:
    """The current values of every secret reference in a configuration (walked recursively)."""
    found: list[str] = []
    _walk(config, found)
    return found


def _walk(value: Any, found: list[str]) -> None:
    if isinstance(value, SecretRef):
        resolved = value.resolve()
        if resolved:
            found.append(resolved)
            found.extend(p for p in _URL_PASSWORD_ONLY.findall(resolved))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk(getattr(value, name), found)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found)


_URL_PASSWORD_ONLY = re.compile(r"://[^\s:/@]+:([^\s@/]+)@")


def register_config_secrets(config: BaseModel) -> None:
    """Mask every secret the configuration references (and a DSN's password on its own)."""
    REDACTOR.add(*config_secrets(config))


class _RedactedRecord(logging.LogRecord):
    _tokenomy_redacts = True

    def getMessage(self) -> str:
        return _redacted_message(self, super().getMessage())


def _redacted_message(record: logging.LogRecord, message: str) -> str:
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if type(record.msg) is Redacted and not record.args:
        return message
    return redact(message)


def _wrapping(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A record factory that redacts the records ``factory`` (another library's) makes."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        # redacted now, into the record's own fields, so copies of the record stay redacted too
        record.msg, record.args = _redacted_message(record, record.getMessage()), ()
        return record

    make._tokenomy_redacts = True  # type: ignore[attr-defined]
    return make


def install_log_redaction() -> None:
    """Make every log record redact its message and traceback (idempotent).

    Checked each time a gateway is built: a library that installs its own record factory later
    (Ray does) gets it wrapped rather than losing the redaction.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "_tokenomy_redacts", False):
        return
    logging.setLogRecordFactory(_RedactedRecord if current is logging.LogRecord else _wrapping(current))
