"""What an operator sees in the log: an access line per request, upstream failures and circuit changes
as rate-limited warnings with the request id, one JSON format for every line, uvicorn's included."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI, InternalServerError
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway
from tests.support.logs import captured_access_log
from tests.support.serve_process import start_serve


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Tokenomy's log lines as JSON, captured."""
    with captured_access_log("json", "tokenomy") as stream:
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def config(url: str, api_key: str = f"${{T11_KEY:-{OPENAI_KEY}}}", extra: str = "") -> str:
    return f"""
{extra}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{url}", api_key: "{api_key}", model: gpt-4o-mini}}
"""


async def test_one_access_line_per_request_with_cost(openai_fake: OpenAIFake, json_log: io.StringIO) -> None:
    async with running_gateway(config(openai_fake.base_url)) as gw:
        client = AsyncOpenAI(base_url=gw.v1, api_key="unused")
        await client.chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": "hello there"}],
            extra_headers={"x-request-id": "acc-1", "x-tokenomy-task": "greet"},
        )
        await gw.flush_ledger()
    access = [line for line in lines(json_log) if line["logger"] == "tokenomy.access"]
    assert len(access) == 1
    line = access[0]
    assert line["message"] == "access" and line["level"] == "INFO"
    assert (
        line["client_request_id"] == "acc-1"
        and line["request_id"].startswith("req_")
        and line["task"] == "greet"
        and line["status"] == 200
    )
    assert line["model"] == "fast" and line["deployment"] == "openai/gpt-4o-mini" and line["cache"] == "bypass"
    assert line["prompt_tokens"] == 2 and line["completion_tokens"] == 3
    assert isinstance(line["cost_usd"], float) and line["cost_usd"] > 0 and line["price"] == "genai-prices"
    assert isinstance(line["latency_ms"], float) and str(line["arrived"]).endswith("Z")


async def test_access_log_can_be_turned_off(openai_fake: OpenAIFake, json_log: io.StringIO) -> None:
    async with running_gateway(config(openai_fake.base_url, extra="server: {access_log: false}")) as gw:
        client = AsyncOpenAI(base_url=gw.v1, api_key="unused")
        await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
        await gw.flush_ledger()
    assert not [line for line in lines(json_log) if line["logger"] == "tokenomy.access"]


async def test_upstream_failures_and_the_circuit_are_warnings(openai_fake: OpenAIFake, json_log: io.StringIO) -> None:
    extra = "routing: {retries: {max_attempts: 1}, health: {failures_to_open: 3, cooldown_s: 30}}"
    async with running_gateway(config(openai_fake.base_url, extra=extra)) as gw:
        client = AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        openai_fake.queue_modes(*["error_500"] * 5)
        for i in range(3):
            with pytest.raises(InternalServerError):
                await client.chat.completions.create(
                    model="fast",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-request-id": f"up-{i}"},
                )
        await gw.flush_ledger()
    warnings = [line for line in lines(json_log) if line["level"] == "WARNING"]
    upstream = [w for w in warnings if w["logger"] == "tokenomy.upstream"]
    assert len(upstream) == 1, "three identical failures within 10 s make one line"
    assert upstream[0]["client_request_id"] == "up-0" and upstream[0]["request_id"].startswith("req_")
    assert "upstream openai/gpt-4o-mini failed" in str(upstream[0]["message"])
    assert "HTTP 502" in str(upstream[0]["message"])
    circuit = [w for w in warnings if w["logger"] == "tokenomy.routing"]
    assert len(circuit) == 1 and "circuit of deployment openai/gpt-4o-mini opened" in str(circuit[0]["message"])


async def test_unset_upstream_key_shows_as_an_upstream_failure(openai_fake: OpenAIFake, json_log: io.StringIO) -> None:
    async with running_gateway(config(openai_fake.base_url, api_key="${T11_NEVER_SET}")) as gw:
        client = AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        with pytest.raises(InternalServerError):
            await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    upstream = [line for line in lines(json_log) if line["logger"] == "tokenomy.upstream"]
    assert upstream and "HTTP 502" in str(upstream[0]["message"])


async def test_serve_json_logs_every_line_as_json_uvicorn_included(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(config(openai_fake.base_url, extra=f'ledger: {{path: "{tmp_path / "l.db"}"}}'))
    proc, url = await start_serve(path, tmp_path, "--log-format", "json")
    async with aiohttp.ClientSession() as http:
        body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(f"{url}/v1/chat/completions", json=body, headers={"x-request-id": "js-1"}) as resp:
            assert resp.status == 200
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    objects = [json.loads(line) for line in stderr.decode().splitlines()]  # fails on any non-JSON line
    loggers = {o["logger"] for o in objects}
    assert {"tokenomy", "uvicorn.error", "tokenomy.access"} <= loggers, loggers
    access = [o for o in objects if o["logger"] == "tokenomy.access"]
    assert [a["client_request_id"] for a in access] == ["js-1"]
    assert stdout == b""


def test_every_access_log_field_is_documented() -> None:
    from tokenomy.ledger.record import LedgerRecord
    from tokenomy.telemetry.access_log import access_fields

    doc = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    section = doc[doc.index("### The access log") : doc.index("### Warnings")]
    for field in access_fields(LedgerRecord(request_id="r", ts=0.0)):
        assert f"`{field}`" in section, f"access log field {field!r} is not documented"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_line_values_are_redacted_in_both_formats(fmt: str) -> None:
    """A key-shaped value a client chose (task, client id, model) never reaches the log, text or JSON."""
    from tokenomy.ledger.record import LedgerRecord
    from tokenomy.redaction import MASK, install_log_redaction
    from tokenomy.telemetry.access_log import AccessLog

    install_log_redaction()
    secret = "sk-proj-Q7w8E9r0T1y2U3i4"
    with captured_access_log(fmt) as stream:  # type: ignore[arg-type]
        for _ in range(2):  # the second line comes from the remembered redactions
            record = LedgerRecord(request_id="req_1", ts=0.0, task=f"t {secret}", requested_model=secret)
            record.client_request_id, record.tenant = secret, "acme"
            AccessLog()(record)
    out = stream.getvalue()
    assert secret not in out and out.count(MASK) >= 6 and out.count("acme") == 2, out


async def test_serve_writes_one_redacted_access_line_per_request_from_the_writer(
    openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    """Under ``serve`` the writer process writes the access log for every worker, on the same
    stderr and in the same text format: one line per request, secrets masked as in the gateway."""
    secret = "plain-config-secret-4711"  # not key-shaped: only the configured value masks it
    path = tmp_path / "gw.yaml"
    text = config(openai_fake.base_url, extra=f'ledger: {{path: "{tmp_path / "l.db"}"}}')
    text += f"""  - name: unused
    deployments:
      - {{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T19_SECRET:-{secret}}}", model: m}}
"""
    path.write_text(text)
    proc, url = await start_serve(path, tmp_path, "--workers", "2")
    ids = [f"w-{i}" for i in range(8)]
    async with aiohttp.ClientSession() as http:
        for request_id in ids:
            body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
            headers = {"x-request-id": request_id, "x-tokenomy-task": f"t-{secret}"}
            async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
                assert resp.status == 200
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    access = [line for line in stderr.decode().splitlines() if " INFO tokenomy.access: access " in line]
    assert sorted(line.split("client_request_id=")[1].split()[0] for line in access) == ids, access
    assert secret not in stderr.decode() and all("task=t-[redacted]" in line for line in access), access


def test_the_writer_writes_the_access_log_only_to_serves_own_log() -> None:
    """The writer inherits stderr: it takes the access log over only when this process's log is
    ``serve``'s handler on stderr, in the same format; a gateway whose lines go elsewhere (an
    embedding program's handler, a test's capture) keeps writing them itself."""
    from tokenomy.config import parse_config
    from tokenomy.ledger.writer_launcher import writer_writes_access_log
    from tokenomy.server import logging_setup

    gw = parse_config(config("http://127.0.0.1:9/v1"))
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        assert not writer_writes_access_log(gw)  # nobody configured this process's log
        logging_setup.configure("info", "text")
        assert writer_writes_access_log(gw)
        json_gw = gw.model_copy(update={"server": gw.server.model_copy(update={"log_format": "json"})})
        assert not writer_writes_access_log(json_gw), "a different format: the gateway writes its own lines"
        off = gw.model_copy(update={"server": gw.server.model_copy(update={"access_log": False})})
        assert not writer_writes_access_log(off)
        capture = logging.StreamHandler(io.StringIO())
        logging.getLogger("tokenomy").addHandler(capture)
        assert not writer_writes_access_log(gw), "lines captured in process stay in process"
        logging.getLogger("tokenomy").removeHandler(capture)
        logging_setup.configure("info", "text", io.StringIO())
        assert not writer_writes_access_log(gw), "not standard error"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging_setup._INSTALLED = None


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_writers_lines_are_the_handlers_lines(fmt: str) -> None:
    """The writer formats access lines itself (one write per batch): byte for byte what the
    handler writes for the same records, in both formats, tricky values and secrets included."""
    from tokenomy.ledger.record import LedgerRecord
    from tokenomy.redaction import install_log_redaction
    from tokenomy.telemetry.access_log import _emit, _ended, json_lines, text_lines

    install_log_redaction()
    records = [
        LedgerRecord(request_id="req_1", ts=1_700_000_000.0, latency_ms=12.5),
        LedgerRecord(
            request_id="req_2",
            ts=1_700_000_000.999,
            latency_ms=0.4,
            task='a "quoted" task=x',
            tenant="ténant",
            requested_model="sk-proj-Q7w8E9r0T1y2U3i4",
            client_request_id="tab\there",
            api_key="k1",
            served_model="m",
            deployment="openai/m",
            stream=True,
            status=499,
            error_type="client_closed",
            ttft_ms=3.25,
            prompt_tokens=7,
            completion_tokens=1,
            cache="miss",
            cost_usd=1.5e-07,
            price_source="config",
        ),
        LedgerRecord(request_id="req_3", ts=1_700_003_599.9996, latency_ms=0.0, task=""),
    ]
    with captured_access_log(fmt) as stream:  # type: ignore[arg-type]
        for record in records:
            _emit(record, _ended(record))
    assert (text_lines if fmt == "text" else json_lines)(records) == stream.getvalue()
    assert "sk-proj" not in stream.getvalue()


def test_the_gateways_own_access_lines_under_serve_take_the_direct_path(capsys: pytest.CaptureFixture[str]) -> None:
    """Under ``serve`` with the ledger off or ``ledger.writer: thread`` (no writer process), the
    gateway's hook writes the same direct lines to serve's handler, one per request."""
    from tokenomy.ledger.record import LedgerRecord
    from tokenomy.server import logging_setup
    from tokenomy.telemetry.access_log import AccessLog, text_lines

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    record = LedgerRecord(request_id="req_9", ts=1_700_000_000.0, latency_ms=2.0, task="greet")
    try:
        logging_setup.configure("info", "text")
        capsys.readouterr()
        AccessLog()(record)
        assert capsys.readouterr().err == text_lines([record])
        logging_setup.configure("warning", "text")
        AccessLog()(record)
        assert capsys.readouterr().err == "", "INFO lines are off at level warning"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging_setup._INSTALLED = None
