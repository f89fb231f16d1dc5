"""The access log: one line per finished request on the ``tokenomy.access`` logger.

Built from the request's usage record, so it carries the tokens and the cost. Under
``tokenomy serve`` with the default writer process, the writer writes it (it receives every record
anyway; ``ledger/writer_process.py``), to the same standard error in the same format, and the
request path pays nothing for it; otherwise (``ledger.writer: thread``, the ledger off, a gateway
embedded in another program, a record the writer could not take) the gateway process writes it as
a ledger hook. Its values are redacted one by one (remembered: they repeat), so the line is not
scanned for secrets again as a whole. Every field is documented in docs/observability.md. In text
format the line is ``access key=value …`` (values with spaces are quoted); in JSON format the same
fields are keys of the object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from json import dumps as _dumps
from typing import Any

import orjson

from tokenomy.ledger.record import LedgerRecord
from tokenomy.redaction import Redacted, redact_value
from tokenomy.server import logging_setup

log = logging.getLogger("tokenomy.access")


def access_fields(record: LedgerRecord) -> dict[str, Any]:
    """The access log's fields for one request, in their documented order; every value that can
    come from a client or the config is redacted (the request id and the time are the gateway's)."""
    return {
        "request_id": record.request_id,
        "client_request_id": _clean(record.client_request_id),
        "arrived": datetime.fromtimestamp(record.ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "key": _clean(record.api_key),
        "tenant": redact_value(record.tenant),
        "task": redact_value(record.task),
        "endpoint": record.endpoint,
        "model": redact_value(record.requested_model),
        "served_model": _clean(record.served_model),
        "deployment": _clean(record.deployment),
        "stream": record.stream,
        "status": record.status,
        "error": record.error_type,
        "latency_ms": round(record.latency_ms, 1),
        "ttft_ms": None if record.ttft_ms is None else round(record.ttft_ms, 1),
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cache": record.cache,
        "cost_usd": round(record.cost_usd, 8),
        "price": record.price_source,
    }


def _clean(value: str | None) -> str | None:
    return None if value is None else redact_value(value)


def _text(value: Any) -> str:
    """A value as the text line shows it: ``-`` for none, JSON-quoted when it has spaces, quotes,
    ``=``, backslashes or unprintable characters (plain ``in`` tests: cheaper than a regex)."""
    if value.__class__ is str:
        plain = value and " " not in value and '"' not in value and "=" not in value and "\\" not in value
        if plain and value.isprintable():
            return value
        return orjson.dumps(value).decode()
    if value is None:
        return "-"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int or type(value) is float:
        return str(value)
    return _text(str(value))


def access_line(fields: dict[str, Any]) -> Redacted:
    """The text line for ``fields`` (already redacted value by value)."""
    return Redacted("access " + " ".join([f"{k}={_text(v)}" for k, v in fields.items()]))


class AccessLog:
    """Writes one INFO line per request (``server.access_log``): a ledger hook in the gateway
    process (when the writer process does not write them), or :meth:`write` in the writer process."""

    def __call__(self, record: LedgerRecord, _traceparent: str | None = None) -> None:
        self.write((record,))

    def write(self, records: Sequence[LedgerRecord]) -> None:
        """One line per record, each stamped with its request's end (arrival plus latency), so a
        line written a few milliseconds later by another process shows the same time.

        With ``tokenomy serve``'s log on standard error (the writer process's case, and the
        gateway's own under ``serve`` with ``ledger.writer: thread`` or the ledger off), the lines
        are formatted here, exactly as its handler would format them (text or JSON), and written
        with one call: the same text for a fraction of the cost of a log record per line. Any
        other log set-up gets log records through ``logging`` as usual."""
        if not records or not log.isEnabledFor(logging.INFO):
            return
        fmt = logging_setup.stderr_format()
        handler = logging_setup.stderr_handler(fmt) if fmt is not None else None
        if handler is None:
            for record in records:
                _emit(record, _ended(record))
            return
        text = text_lines(records) if fmt == "text" else json_lines(records)
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        finally:
            handler.release()


def text_lines(records: Iterable[LedgerRecord]) -> str:
    """The text-format log lines of ``records`` (``time INFO tokenomy.access: access …``, as
    :class:`~tokenomy.server.logging_setup.TextFormatter` writes them), newline-terminated."""
    return "".join([f"{_asctime(_ended(r))} INFO tokenomy.access: {access_line(access_fields(r))}\n" for r in records])


def json_lines(records: Iterable[LedgerRecord]) -> str:
    """The JSON-format log lines of ``records``, as ``tokenomy serve``'s JSON handler writes them
    (its key order and separators: ``time``, ``level``, ``logger``, ``message``, then the fields)."""
    return "".join(
        [
            _dumps({"time": _asctime(_ended(r)), **_JSON_HEAD, **access_fields(r)}, ensure_ascii=False) + "\n"
            for r in records
        ]
    )


_JSON_HEAD = {"level": "INFO", "logger": "tokenomy.access", "message": "access"}


def _ended(record: LedgerRecord) -> float:
    return record.ts + record.latency_ms / 1000.0


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text (replaced whole: thread-safe)


def _asctime(created: float) -> str:
    """``logging.Formatter.formatTime``'s default (local time, ``YYYY-mm-dd HH:MM:SS,mmm``)."""
    global _second
    second = int(created)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)))
    return f"{cached[1]},{int((created - second) * 1000):03d}"


def _emit(record: LedgerRecord, created: float) -> None:
    fields = access_fields(record)
    # log.info without its search of the stack for the caller (every line comes from here)
    entry = log.makeRecord(log.name, logging.INFO, __file__, 0, access_line(fields), (), None, extra=fields)
    entry.created, entry.msecs = created, int((created - int(created)) * 1000) + 0.0
    log.handle(entry)
