"""The fault matrix: a real gateway in front of a failing and a healthy fake upstream.

For each fault (429 with Retry-After, 500, slow beyond the timeout, connection refused, stream cut
mid-way), streaming or not: the client gets the healthy fallback's answer when it has one and a
clean OpenAI error otherwise, and the ledger holds exactly one record per request, with the
deployment that answered and the tokens of that one answer.
"""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from tests.fakes.openai_upstream import OpenAIFake, start_openai_fake
from tests.support.gateway import RunningGateway, running_gateway

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
FAULTS = {  # fault -> (fake mode, status and code the client sees when there is no fallback)
    "429": ("error_429", 429, "rate_limit_exceeded"),
    "500": ("error_500", 502, "upstream_error"),
    "slow": ("slow", 504, "upstream_timeout"),
    "refused": ("ok", 502, "upstream_unreachable"),
    "cut": ("cut_stream", 502, "upstream_connection_error"),
}


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[tuple[OpenAIFake, OpenAIFake]]:
    bad, good = await start_openai_fake(delay=2.0), await start_openai_fake()
    yield bad, good
    await bad.close()
    await good.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def gateway_config(bad_url: str, good_url: str, ledger: Path) -> str:
    common = "model: gpt-4o-mini, timeout_s: 0.4, connect_timeout_s: 0.4"
    return f"""
models:
  - name: primary
    fallbacks: [backup]
    deployments: [{{provider: openai, base_url: "{bad_url}", name: bad, {common}}}]
  - name: lonely
    deployments: [{{provider: openai, base_url: "{bad_url}", name: bad-lonely, {common}}}]
  - name: backup
    deployments: [{{provider: openai, base_url: "{good_url}", name: good, {common}}}]
ledger: {{path: "{ledger}", flush_interval_ms: 20}}
"""


@dataclass
class Rig:
    gw: RunningGateway
    bad: OpenAIFake
    ledger: Path
    fault: str

    @property
    def bad_calls(self) -> int:
        """Requests the failing upstream received (a refused connection reaches nobody)."""
        return 0 if self.fault == "refused" else len(self.bad.requests)

    async def only_record(self, request_id: str) -> dict[str, Any]:
        """The ledger's single record, asserting it is the only one for this gateway."""
        await self.gw.flush_ledger()
        conn = sqlite3.connect(self.ledger)
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM requests WHERE client_request_id = ?", (request_id,))]
        total = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        conn.close()
        assert len(rows) == 1 and total == 1, f"{request_id}: {len(rows)} records of {total}"
        return rows[0]


@pytest.fixture(params=list(FAULTS))
async def rig(
    request: pytest.FixtureRequest, fakes: tuple[OpenAIFake, OpenAIFake], tmp_path: Path
) -> AsyncIterator[Rig]:
    bad, good = fakes
    bad.reset()
    good.reset()
    fault = request.param
    bad.mode = FAULTS[fault][0]
    url = closed_port_url() if fault == "refused" else bad.base_url
    ledger = tmp_path / "ledger.db"
    async with running_gateway(gateway_config(url, good.base_url, ledger)) as gw:
        yield Rig(gw, bad, ledger, fault)


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0, timeout=10)


def new_id() -> str:
    return f"fm-{uuid.uuid4().hex[:12]}"


async def test_fallback_answers_and_is_recorded_once(rig: Rig) -> None:
    rid = new_id()
    raw = await client(rig.gw).chat.completions.with_raw_response.create(
        model="primary", messages=MSG, extra_headers={"x-request-id": rid}
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo: hello there"
    assert raw.headers["x-tokenomy-deployment"] == "good" and raw.headers["x-tokenomy-model"] == "backup"
    assert rig.bad_calls == (0 if rig.fault == "refused" else 1)
    row = await rig.only_record(rid)
    assert (row["status"], row["deployment"], row["served_model"]) == (200, "good", "backup")
    assert row["route"] == "fallback:backup" and reply.usage is not None
    # the one answer's tokens: the failed attempt added nothing
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert row["cost_usd"] > 0


async def test_without_fallback_the_error_is_clean_and_costs_nothing(rig: Rig) -> None:
    _mode, status, code = FAULTS[rig.fault]
    rid = new_id()
    with pytest.raises(openai.APIStatusError) as info:
        await client(rig.gw).chat.completions.create(model="lonely", messages=MSG, extra_headers={"x-request-id": rid})
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == code and body["message"] and "Traceback" not in str(body)
    if rig.fault == "429":
        assert info.value.response.headers["retry-after"] == "7"
    assert rig.bad_calls == (0 if rig.fault == "refused" else 1)
    row = await rig.only_record(rid)
    assert (row["status"], row["deployment"]) == (status, "bad-lonely")
    assert row["cost_usd"] == 0 and row["prompt_tokens"] == row["completion_tokens"] == 0


async def test_streams_fail_over_before_the_first_byte_and_end_cleanly_after(rig: Rig) -> None:
    rid = new_id()
    stream = await client(rig.gw).chat.completions.create(
        model="primary", messages=MSG, stream=True, extra_headers={"x-request-id": rid}
    )
    pieces: list[str] = []
    if rig.fault == "cut":  # the first chunks already reached the client: no retry, an error event ends it
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                pieces.extend(c.delta.content or "" for c in chunk.choices)
        assert pieces and "Upstream" in info.value.message and rig.bad_calls == 1
        row = await rig.only_record(rid)
        assert (row["status"], row["deployment"], row["route"]) == (502, "bad", "single")
        return
    async for chunk in stream:
        pieces.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(pieces) == "echo: hello there"
    row = await rig.only_record(rid)
    assert (row["status"], row["deployment"], row["route"]) == (200, "good", "fallback:backup")
    assert row["completion_tokens"] > 0 and row["cost_usd"] > 0


async def test_rpm_limits_spread_load_instead_of_collecting_429s(
    fakes: tuple[OpenAIFake, OpenAIFake], tmp_path: Path
) -> None:
    _, good = fakes
    good.reset()
    deps = "\n".join(
        f'      - {{provider: openai, base_url: "{good.base_url}", name: d{i}, model: gpt-4o-mini, rpm: 2,'
        f" pricing: {{input_per_mtok: {i}, output_per_mtok: {i}}}}}"
        for i in (1, 2, 3)
    )
    config = f"""
models:
  - name: spread
    strategy: cheapest
    deployments:
{deps}
routing: {{limits: {{max_wait_ms: 0}}}}
ledger: {{enabled: false}}
"""
    async with running_gateway(config) as gw:
        served = []
        for _ in range(6):
            raw = await client(gw).chat.completions.with_raw_response.create(model="spread", messages=MSG)
            served.append(raw.headers["x-tokenomy-deployment"])
        assert served == ["d1", "d1", "d2", "d2", "d3", "d3"] and len(good.requests) == 6
        with pytest.raises(openai.RateLimitError) as info:
            await client(gw).chat.completions.create(model="spread", messages=MSG)
        assert info.value.response.headers["retry-after"] == "30" and len(good.requests) == 6
        assert isinstance(info.value.body, dict) and info.value.body["code"] == "rate_limit_exceeded"
