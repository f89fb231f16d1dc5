"""The access log: one line per finished request on the ``tokenomy.access`` logger.

Written when the request's usage record is built (a ledger hook, on the event loop), so it carries
the tokens and the cost. Its values are redacted one by one (remembered: they repeat), so the
line is not scanned for secrets again as a whole. Every field is documented in
docs/observability.md. In text format the line is ``access key=value …`` (values with spaces are
quoted); in JSON format the same fields are keys of the object.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from tokenomy.ledger.record import LedgerRecord
from tokenomy.redaction import Redacted, redact_value

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


_QUOTED = re.compile(r'[ "=\\]')


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int or type(value) is float:
        return str(value)
    text = str(value)
    if not text or _QUOTED.search(text) or not text.isprintable():
        return orjson.dumps(text).decode()
    return text


class AccessLog:
    """A ledger hook writing one INFO line per request (``server.access_log``)."""

    def __call__(self, record: LedgerRecord, _traceparent: str | None = None) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields = access_fields(record)
        line = Redacted("access " + " ".join([f"{k}={_text(v)}" for k, v in fields.items()]))
        # log.info without its search of the stack for the caller (every line comes from here)
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, (), None, extra=fields))
