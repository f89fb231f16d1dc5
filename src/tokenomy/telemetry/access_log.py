"""The access log: one line per finished request on the ``tokenomy.access`` logger.

Written from the ledger writer's thread when the request's usage record is built, so it carries
the tokens and the cost and costs the request path nothing. Every field is documented in
docs/observability.md. In text format the line is ``access key=value …`` (values with spaces are
quoted); in JSON format the same fields are keys of the object.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from tokenomy.ledger.record import LedgerRecord

log = logging.getLogger("tokenomy.access")


def access_fields(record: LedgerRecord) -> dict[str, Any]:
    """The access log's fields for one request, in their documented order."""
    return {
        "request_id": record.request_id,
        "client_request_id": record.client_request_id,
        "arrived": datetime.fromtimestamp(record.ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "key": record.api_key,
        "tenant": record.tenant,
        "task": record.task,
        "endpoint": record.endpoint,
        "model": record.requested_model,
        "served_model": record.served_model,
        "deployment": record.deployment,
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


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return orjson.dumps(text).decode()
    return text


class AccessLog:
    """A ledger hook writing one INFO line per request (``server.access_log``)."""

    def __call__(self, record: LedgerRecord, _traceparent: str | None = None) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields = access_fields(record)
        line = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        log.info("access %s", line, extra=fields)
