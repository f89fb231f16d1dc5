"""Log setup for ``tokenomy serve``: one handler, text or JSON, uvicorn's lines included.

Every line carries the request id of the request being handled when there is one (a context
variable set at the edge), so an operator can follow one request through the log.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str | None] = ContextVar("tokenomy_request_id", default=None)
"""The gateway's id of the request the current task serves (set by the app for each request)."""
CLIENT_REQUEST_ID: ContextVar[str | None] = ContextVar("tokenomy_client_request_id", default=None)
"""The client's own ``x-request-id`` for that request, when it sent one."""

_INSTALLED: tuple[logging.Handler, LogFormat] | None = None
"""The handler :func:`configure` installed, with its format, when it writes to standard error."""

_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Give every record a ``request_id`` attribute (``None`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        if getattr(record, "client_request_id", None) is None:
            record.client_request_id = CLIENT_REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, with `` request_id=…`` appended inside a request."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id and "request_id=" not in record.message:  # set by the format above
            line = f"{line} request_id={request_id}"
            client_id = getattr(record, "client_request_id", None)
            if client_id:
                line = f"{line} client_request_id={client_id}"
        return line


class _JsonFormatter(JsonFormatter):
    """In JSON, an access line's fields are keys of the object: its message is just ``access``."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "tokenomy.access":
            record = logging.makeLogRecord({**record.__dict__, "msg": "access", "args": ()})
        return super().format(record)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message, request_id, client_request_id and extras."""
    return _JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(client_request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


def make_handler(fmt: LogFormat = "text", stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing ``fmt`` lines (with request ids) to ``stream`` (default: stderr)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    return handler


def configure(level: str = "info", fmt: LogFormat = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line (Tokenomy's, uvicorn's, llama.cpp's) through one handler in ``fmt``."""
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _UVICORN:  # uvicorn installs its own handlers unless told otherwise: use ours
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    global _INSTALLED
    _INSTALLED = (handler, fmt) if stream is None else None
    return handler


def stderr_handler(fmt: LogFormat) -> logging.StreamHandler[IO[str]] | None:
    """The handler :func:`configure` installed, when :func:`stderr_format` is ``fmt``: lines may be
    formatted without it and written to its stream directly (the writer's access lines)."""
    if _INSTALLED is None or stderr_format() != fmt:
        return None
    handler = _INSTALLED[0]
    return handler if isinstance(handler, logging.StreamHandler) else None


def stderr_format() -> LogFormat | None:
    """The format of the log lines on standard error, when :func:`configure` set up this process's
    log (``tokenomy serve``) and its handler is still the one in use; None otherwise (a gateway
    embedded in another program, or a test capturing lines in process).

    Then another process writing to the same standard error in this format writes to the
    gateway's log: the ledger writer process writes the access log this way.
    """
    if _INSTALLED is None:
        return None
    handler, fmt = _INSTALLED
    access = logging.getLogger("tokenomy.access")
    if logging.getLogger().handlers != [handler] or access.handlers or not access.propagate:
        return None
    if logging.getLogger("tokenomy").handlers or access.getEffectiveLevel() != logging.getLogger().level:
        return None
    return fmt
