"""Bad input at the HTTP edge: each case gets the right status and error type, never a 500."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.pipeline.guard import hash_key


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = f"""
server: {{max_body_bytes: 2048, metrics_key: "${{NO_SUCH_METRICS_KEY:-metrics-secret}}"}}
auth:
  keys:
    - name: team-a
      sha256: {hash_key("sk-good")}
models:
  - name: gpt-4o-mini
    deployments:
      - provider: openai
        base_url: http://127.0.0.1:{_closed_port()}/v1
        api_key: ${{NO_SUCH_KEY:-sk-upstream}}
        model: gpt-4o-mini
"""


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[RunningGateway]:
    async with running_gateway(CONFIG) as gw:
        yield gw


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"authorization": "Bearer sk-good"}) as session:
        yield session


async def _post(http: aiohttp.ClientSession, url: str, data: bytes) -> tuple[int, dict[str, object], str]:
    async with http.post(url, data=data, headers={"content-type": "application/json"}) as resp:
        body = await resp.json()
        return resp.status, body["error"], resp.headers.get("x-request-id", "")


@pytest.mark.parametrize(
    ("data", "status", "param"),
    [
        (b"{bad json", 400, None),
        (b"[]", 400, None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "model"),
        (b'{"model": 5, "messages": []}', 400, "model"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}',
            400,
            "temperature",
        ),
        (b'{"model": "unknown-model", "messages": [{"role": "user", "content": "hi"}]}', 404, "model"),
    ],
)
async def test_bad_chat_requests(
    gateway: RunningGateway, http: aiohttp.ClientSession, data: bytes, status: int, param: str | None
) -> None:
    got, error, request_id = await _post(http, f"{gateway.v1}/chat/completions", data)
    assert got == status
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert request_id.startswith("req_")


async def test_unknown_model_lists_available(gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    _, error, _ = await _post(
        http, f"{gateway.v1}/chat/completions", b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}'
    )
    assert "Available models: gpt-4o-mini" in str(error["message"])


async def test_body_over_limit_is_413(gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    big = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * 4096 + b'"}]}'
    status, error, _ = await _post(http, f"{gateway.v1}/chat/completions", big)
    assert status == 413 and error["code"] == "request_too_large"


async def test_wrong_method_and_path(gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.v1}/chat/completions") as resp:
        assert resp.status == 405 and resp.headers["allow"] == "POST"
    async with http.get(f"{gateway.v1}/nope") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "unknown_url"


async def test_missing_and_wrong_key_get_401_in_openai_format(gateway: RunningGateway) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.v1, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401
    assert info.value.body["type"] == "authentication_error"  # type: ignore[index]
    async with aiohttp.ClientSession() as anonymous:
        status, error, _ = await _post(
            anonymous,
            f"{gateway.v1}/chat/completions",
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
        )
    assert status == 401 and "Missing API key" in str(error["message"])


async def test_unreachable_upstream_is_502(gateway: RunningGateway) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.v1, api_key="sk-good", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_unreachable"  # type: ignore[index]


async def test_operational_endpoints(gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{gateway.url}/readyz") as resp:
        assert resp.status == 200 and (await resp.json())["ready"] is True
    async with http.get(f"{gateway.url}/openapi.json") as resp:
        doc = await resp.json()
        assert doc["openapi"].startswith("3.1")
        assert "/v1/chat/completions" in doc["paths"] and "ChatCompletionRequest" in doc["components"]["schemas"]
    async with http.get(f"{gateway.url}/metrics") as resp:  # a client key is not the metrics key
        assert resp.status == 401
    async with http.get(f"{gateway.url}/metrics", headers={"authorization": "Bearer metrics-secret"}) as resp:
        text = await resp.text()
        assert "tokenomy_requests_total" in text and "tokenomy_request_duration_seconds_bucket" in text
    async with http.get(f"{gateway.v1}/models") as resp:
        assert [m["id"] for m in (await resp.json())["data"]] == ["gpt-4o-mini"]
