"""OpenTelemetry traces of finished requests (GenAI semantic conventions), exported over OTLP/HTTP.

Spans are built after the fact from ledger records, on the ledger writer's thread, with explicit
start and end times: tracing costs the request path nothing. The tracer has its own
``TracerProvider`` (the global one is left to the host application) and is off by default.
"""

from __future__ import annotations

import logging

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from tokenomy.config.observability import TracingConfig
from tokenomy.ledger.record import LEVERS, LedgerRecord

log = logging.getLogger("tokenomy.tracing")

OPERATIONS = {
    "chat": gen_ai.GenAiOperationNameValues.CHAT.value,
    "completions": gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value,
    "embeddings": gen_ai.GenAiOperationNameValues.EMBEDDINGS.value,
}
"""``gen_ai.operation.name`` for each ledger endpoint."""

FIRST_TOKEN_EVENT = "gen_ai.first_token"
"""Span event at the time the first streamed token reached the gateway."""

_NS_PER_S = 1_000_000_000


class RequestTracer:
    """Turns ledger records into one SERVER span each and exports them in batches."""

    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None) -> None:
        """Set up a private provider; ``exporter`` replaces the OTLP/HTTP one (tests, other backends)."""
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            resource=Resource.create({SERVICE_NAME: config.service_name}),
        )
        if exporter is None:
            exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, headers=dict(config.headers))
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("tokenomy")
        self._propagator = TraceContextTextMapPropagator()

    def record(self, record: LedgerRecord, traceparent: str | None = None) -> None:
        """Export ``record`` as a span, child of ``traceparent`` (the W3C header) when given; never raises."""
        try:
            self._record(record, traceparent)
        except Exception:  # a tracing bug must not stop the ledger writer
            log.exception("could not trace request %s", record.request_id)

    def _record(self, record: LedgerRecord, traceparent: str | None) -> None:
        operation = OPERATIONS.get(record.endpoint, record.endpoint)
        parent = self._propagator.extract({"traceparent": traceparent}) if traceparent else Context()  # a root span
        start = int(record.ts * _NS_PER_S)
        span = self._tracer.start_span(
            f"{operation} {record.requested_model}".rstrip(),
            context=parent,
            kind=SpanKind.SERVER,
            start_time=start,
        )
        if not span.is_recording():  # not sampled: skip building the attributes
            return
        span.set_attributes(span_attributes(record, operation))
        if record.ttft_ms is not None:
            span.add_event(FIRST_TOKEN_EVENT, timestamp=start + int(record.ttft_ms * 1_000_000))
        if record.status >= 400:
            span.set_status(Status(StatusCode.ERROR, record.error_type or f"HTTP {record.status}"))
        span.end(end_time=start + int(record.latency_ms * 1_000_000))

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Export every span recorded so far; False if that did not finish in time."""
        return self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Flush the pending spans and stop the exporter."""
        self._provider.shutdown()


def build_tracer(config: TracingConfig) -> RequestTracer | None:
    """A tracer when tracing is enabled, else None."""
    return RequestTracer(config) if config.enabled else None


def span_attributes(record: LedgerRecord, operation: str) -> dict[str, AttributeValue]:
    """The span attributes of a record: GenAI semantic conventions plus ``tokenomy.*``."""
    attrs: dict[str, AttributeValue] = {
        gen_ai.GEN_AI_OPERATION_NAME: operation,
        gen_ai.GEN_AI_REQUEST_MODEL: record.requested_model,
        gen_ai.GEN_AI_REQUEST_STREAM: record.stream,
        gen_ai.GEN_AI_USAGE_INPUT_TOKENS: record.prompt_tokens,
        gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: record.completion_tokens,
        HTTP_RESPONSE_STATUS_CODE: record.status,
        "tokenomy.request_id": record.request_id,
        "tokenomy.task": record.task,
        "tokenomy.tenant": record.tenant,
        "tokenomy.endpoint": record.endpoint,
        "tokenomy.wire": record.wire,
        "tokenomy.cache": record.cache,
        "tokenomy.token_source": record.token_source,
        "tokenomy.price_source": record.price_source,
        "tokenomy.cost_usd": record.cost_usd,
        "tokenomy.baseline_cost_usd": record.baseline_cost_usd,
    }
    for lever in LEVERS:
        attrs[f"tokenomy.saved_usd.{lever}"] = getattr(record, f"saved_{lever}_usd")
    if record.provider is not None:
        attrs[gen_ai.GEN_AI_PROVIDER_NAME] = record.provider
        attrs[gen_ai.GEN_AI_SYSTEM] = record.provider  # the attribute older backends know
    if record.served_model is not None:
        attrs[gen_ai.GEN_AI_RESPONSE_MODEL] = record.served_model
    if record.cached_tokens:
        attrs[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = record.cached_tokens
    if record.reasoning_tokens:
        attrs[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = record.reasoning_tokens
    if record.ttft_ms is not None:
        attrs[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = record.ttft_ms / 1000.0
        attrs["tokenomy.ttft_ms"] = record.ttft_ms
    if record.status >= 400:
        attrs[ERROR_TYPE] = record.error_type or str(record.status)
    optional = {
        "tokenomy.deployment": record.deployment,
        "tokenomy.route": record.route,
        "tokenomy.api_key": record.api_key,
        "tokenomy.language": record.language,
    }
    attrs.update({key: value for key, value in optional.items() if value is not None})
    return attrs
