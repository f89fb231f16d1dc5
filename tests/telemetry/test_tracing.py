"""Request traces: real OTLP/HTTP export to a receiver on loopback, decoded from protobuf."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tokenomy.config.observability import TracingConfig
from tokenomy.ledger.record import LedgerRecord
from tokenomy.telemetry.tracing import FIRST_TOKEN_EVENT, RequestTracer, build_tracer

TS = 1_750_000_000.123456
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@dataclass
class Receiver:
    """An OTLP/HTTP traces endpoint that keeps what it receives."""

    url: str
    headers: list[dict[str, str]] = field(default_factory=list)
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)

    def spans(self) -> dict[str, tuple[Span, dict[str, Any]]]:
        """Received spans by ``tokenomy.request_id``, each with its decoded attributes."""
        out: dict[str, tuple[Span, dict[str, Any]]] = {}
        for request in self.requests:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attrs = {kv.key: _value(kv.value) for kv in span.attributes}
                        out[attrs["tokenomy.request_id"]] = (span, attrs)
        return out

    def service_names(self) -> set[Any]:
        return {
            _value(kv.value)
            for request in self.requests
            for resource_spans in request.resource_spans
            for kv in resource_spans.resource.attributes
            if kv.key == "service.name"
        }


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver(url="")

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        got.requests.append(message)
        got.headers.append(dict(request.headers))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    got.url = f"http://127.0.0.1:{port}/v1/traces"
    yield got
    await runner.cleanup()


def tracer_for(receiver: Receiver, **config: Any) -> RequestTracer:
    return RequestTracer(TracingConfig(enabled=True, otlp_endpoint=receiver.url, **config))


async def export(tracer: RequestTracer, *records: tuple[LedgerRecord, str | None]) -> None:
    """Record, then flush and stop off the event loop (the receiver runs on it)."""
    for record, traceparent in records:
        tracer.record(record, traceparent)
    await asyncio.to_thread(tracer.shutdown)


def ok_record() -> LedgerRecord:
    return LedgerRecord(
        request_id="ok-1",
        ts=TS,
        tenant="acme",
        task="summarize",
        endpoint="chat",
        requested_model="gpt-4o",
        served_model="gpt-4o-mini",
        deployment="openai/gpt-4o-mini",
        provider="openai",
        stream=True,
        status=200,
        prompt_tokens=120,
        completion_tokens=30,
        cached_tokens=64,
        latency_ms=850.5,
        ttft_ms=120.25,
        cache="miss",
        cost_usd=0.0004,
        baseline_cost_usd=0.0061,
        saved_routing_usd=0.0057,
    )


def failed_record() -> LedgerRecord:
    return LedgerRecord(
        request_id="bad-1",
        ts=TS + 1,
        task="extract",
        endpoint="completions",
        requested_model="fast",
        served_model="gpt-4o-mini",
        provider="openai",
        status=502,
        error_type="upstream_error",
        latency_ms=12.0,
    )


async def test_spans_follow_the_genai_conventions(receiver: Receiver) -> None:
    tracer = tracer_for(receiver, service_name="gw-test", headers={"x-api-key": "secret"})
    embed = LedgerRecord(request_id="emb-1", ts=TS, endpoint="embeddings", requested_model="embed", cache="hit-exact")
    await export(tracer, (ok_record(), None), (failed_record(), None), (embed, None))

    spans = receiver.spans()
    assert set(spans) == {"ok-1", "bad-1", "emb-1"}
    assert receiver.service_names() == {"gw-test"}
    assert all(h.get("x-api-key") == "secret" for h in receiver.headers)

    span, attrs = spans["ok-1"]
    assert span.name == "chat gpt-4o"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.start_time_unix_nano == int(TS * 1e9)
    assert abs(span.start_time_unix_nano - TS * 1e9) < 1000
    assert span.end_time_unix_nano - span.start_time_unix_nano == 850_500_000
    assert span.status.code == Status.STATUS_CODE_UNSET
    assert len(span.parent_span_id) == 0
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 30
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert "gen_ai.usage.reasoning.output_tokens" not in attrs
    assert attrs["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.12025)
    assert attrs["http.response.status_code"] == 200
    assert "error.type" not in attrs
    assert attrs["tokenomy.task"] == "summarize"
    assert attrs["tokenomy.tenant"] == "acme"
    assert attrs["tokenomy.cache"] == "miss"
    assert attrs["tokenomy.deployment"] == "openai/gpt-4o-mini"
    assert attrs["tokenomy.cost_usd"] == pytest.approx(0.0004)
    assert attrs["tokenomy.baseline_cost_usd"] == pytest.approx(0.0061)
    assert attrs["tokenomy.saved_usd.routing"] == pytest.approx(0.0057)
    assert attrs["tokenomy.saved_usd.cache"] == 0.0
    assert "tokenomy.route" not in attrs  # None values are left out
    (event,) = span.events
    assert event.name == FIRST_TOKEN_EVENT
    assert event.time_unix_nano - span.start_time_unix_nano == 120_250_000

    span, attrs = spans["bad-1"]
    assert span.name == "text_completion fast"
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.status.message == "upstream_error"
    assert attrs["error.type"] == "upstream_error"
    assert attrs["http.response.status_code"] == 502
    assert span.end_time_unix_nano - span.start_time_unix_nano == 12_000_000
    assert not span.events

    span, attrs = spans["emb-1"]
    assert span.name == "embeddings embed"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert "gen_ai.provider.name" not in attrs  # a cache hit called no provider
    assert "gen_ai.response.model" not in attrs


async def test_error_type_defaults_to_the_status_code(receiver: Receiver) -> None:
    tracer = tracer_for(receiver)
    await export(tracer, (LedgerRecord(request_id="r", ts=TS, requested_model="m", status=429), None))
    span, attrs = receiver.spans()["r"]
    assert attrs["error.type"] == "429"
    assert span.status.code == Status.STATUS_CODE_ERROR


async def test_parent_comes_from_traceparent(receiver: Receiver) -> None:
    tracer = tracer_for(receiver)
    await export(
        tracer,
        (ok_record(), f"00-{TRACE_ID}-{PARENT_ID}-01"),
        (failed_record(), "not-a-traceparent"),
    )
    spans = receiver.spans()
    child, _ = spans["ok-1"]
    assert child.trace_id.hex() == TRACE_ID
    assert child.parent_span_id.hex() == PARENT_ID
    root, _ = spans["bad-1"]  # a broken header: a new trace
    assert root.trace_id.hex() != TRACE_ID
    assert len(root.parent_span_id) == 0


async def test_sample_ratio_zero_exports_nothing(receiver: Receiver) -> None:
    tracer = tracer_for(receiver, sample_ratio=0.0)
    unsampled_parent = f"00-{TRACE_ID}-{PARENT_ID}-00"
    await export(tracer, (ok_record(), None), (failed_record(), unsampled_parent))
    assert receiver.requests == []


async def test_a_sampled_parent_overrides_the_ratio(receiver: Receiver) -> None:
    tracer = tracer_for(receiver, sample_ratio=0.0)
    await export(tracer, (ok_record(), f"00-{TRACE_ID}-{PARENT_ID}-01"), (failed_record(), None))
    assert set(receiver.spans()) == {"ok-1"}


def test_off_by_default() -> None:
    assert build_tracer(TracingConfig()) is None
    tracer = build_tracer(TracingConfig(enabled=True, otlp_endpoint="http://127.0.0.1:9/v1/traces"))
    assert isinstance(tracer, RequestTracer)
    tracer.shutdown()  # nothing recorded: nothing to send to the closed port


async def test_gateway_exports_a_span_per_request(receiver: Receiver, tmp_path: Any) -> None:
    """Tracing switched on in the config: real requests through a gateway become spans."""
    from tests.conftest import proxy_config
    from tests.fakes.openai_upstream import start_openai_fake
    from tests.support.gateway import running_gateway

    fake = await start_openai_fake(api_key="sk-fake-openai")
    config = proxy_config(fake.base_url, fake.base_url) + (
        f'ledger: {{path: "{tmp_path / "l.db"}", flush_interval_ms: 20}}\n'
        f'telemetry: {{tracing: {{enabled: true, otlp_endpoint: "{receiver.url}"}}}}\n'
    )
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    try:
        async with running_gateway(config) as gw:
            import openai

            client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
            raw = await client.chat.completions.with_raw_response.create(
                model="fast", messages=[{"role": "user", "content": "hi"}], extra_headers={"traceparent": traceparent}
            )
            request_id = raw.headers["x-request-id"]
            await gw.flush_ledger()
        # leaving the context closed the gateway, which shut the tracer down (flushing spans)
    finally:
        await fake.close()
    span, attrs = receiver.spans()[request_id]
    assert span.trace_id.hex() == TRACE_ID and span.parent_span_id.hex() == PARENT_ID
    assert attrs["gen_ai.request.model"] == "fast" and attrs["gen_ai.usage.input_tokens"] > 0
