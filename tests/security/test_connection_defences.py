"""No unauthenticated denial of service at the connection level (finding 1).

As found: 2,100 connections that sent headers (``Content-Length: 100000``) and one body byte,
then stalled, made every legitimate request fail with 503 for as long as they were held: a
request took an in-flight slot before its body was read and before its key was checked, and
nothing timed out slow headers or slow bodies; a 16 MB header was accepted; a 3 MB request of
1,000 x 100 content parts cost 110-160 ms of event loop before its 401.

Here ``max_in_flight`` is 20 and more stalled connections than that are held (the full-size
attack, 2,300 connections against the default limit, is ``bench/overload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.keys.record import hash_key
from tokenomy.server import schemas
from tokenomy.server.edge import ClientAddresses

KEY = "sk-legit-client"
STALLED = 60
BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def _config(openai_url: str, keys: bool, **server: Any) -> str:
    limits = {
        "max_in_flight": 20,
        "header_timeout_s": 1.0,
        "body_timeout_s": 1.0,
        "trusted_proxies": ["127.0.0.1"],
        **server,
    }
    auth = f'auth: {{keys: [{{name: legit, sha256: "{hash_key(KEY)}"}}]}}' if keys else ""
    return f"""
server: {orjson.dumps(limits).decode()}
{auth}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{openai_url}", api_key: "${{T_OPENAI_KEY:-sk-fake-openai}}", model: gpt-4o-mini}}
"""


async def _open(gw: RunningGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


@contextlib.asynccontextmanager
async def _stalled(gw: RunningGateway, count: int, head: bytes) -> AsyncIterator[list[asyncio.StreamReader]]:
    """``count`` connections that sent ``head`` and one body byte, then stall."""
    conns = [await _open(gw) for _ in range(count)]
    for _, writer in conns:
        writer.write(head + b"{")
    await asyncio.gather(*(w.drain() for _, w in conns))
    try:
        yield [r for r, _ in conns]
    finally:
        for _, writer in conns:
            writer.close()


def _head(forwarded: str, key: str | None = None) -> bytes:
    auth = f"authorization: Bearer {key}\r\n" if key else ""
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: 100000\r\nx-forwarded-for: {forwarded}\r\n{auth}\r\n"
    ).encode()


async def _legit(gw: RunningGateway, n: int, **headers: str) -> list[int]:
    """``n`` real requests, 10 at a time (within max_in_flight)."""
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        for _ in range(n // 10):
            batch = (http.post("/v1/chat/completions", json=BODY, headers=headers) for _ in range(10))
            statuses += [a.status_code for a in await asyncio.gather(*batch)]
    return statuses


async def _drip(writer: asyncio.StreamWriter, byte: bytes, count: int) -> None:
    """Send ``byte`` every 0.1 s, ``count`` times (until the gateway closes the connection)."""
    with contextlib.suppress(ConnectionError):
        for _ in range(count):
            writer.write(byte)
            await writer.drain()
            await asyncio.sleep(0.1)


async def test_stalled_bodies_without_a_key_are_refused_at_once(openai_fake: OpenAIFake) -> None:
    async with (
        running_gateway(_config(openai_fake.base_url, keys=True)) as gw,
        _stalled(gw, STALLED, _head("10.9.9.9")) as readers,
    ):
        answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r in readers)), 5)
        statuses = await _legit(gw, 40, authorization=f"Bearer {KEY}")
    assert all(a.startswith(b"HTTP/1.1 401") for a in answers), answers[0][:80]
    assert statuses == [200] * 40


@pytest.mark.parametrize("wait_ms", [0, 200])
async def test_stalled_bodies_hold_no_in_flight_slot_and_time_out(openai_fake: OpenAIFake, wait_ms: int) -> None:
    """An open gateway (no keys): the stallers are pending, never in flight; legitimate traffic flows
    (with a wait for a slot too: a stalled body waits for nothing and holds no slot)."""
    async with running_gateway(_config(openai_fake.base_url, keys=False, shed_wait_ms=wait_ms)) as gw:
        admission = gw.app.admission
        async with _stalled(gw, STALLED, _head("10.9.9.9")) as readers:
            await asyncio.sleep(0.3)
            pending = len(admission.pending)
            statuses = await _legit(gw, 40, **{"x-forwarded-for": "10.1.1.1"})
            started = time.monotonic()
            answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r in readers)), 10)
            waited = time.monotonic() - started
    assert statuses == [200] * 40, "more stalled connections than max_in_flight, and every real request served"
    # one address may have 64 bodies arriving at once: the rest are refused right away
    assert pending == min(STALLED, 64)
    assert all(a.startswith((b"HTTP/1.1 408", b"HTTP/1.1 429")) for a in answers)
    assert waited < 3.0, "the body deadline (1 s) ends every stalled request"


async def test_a_slow_head_is_cut_at_the_deadline(openai_fake: OpenAIFake) -> None:
    async with running_gateway(_config(openai_fake.base_url, keys=False)) as gw:
        reader, writer = await _open(gw)
        started = time.monotonic()
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        dripping = asyncio.create_task(_drip(writer, b"x", 30))  # never a complete head
        answer = await asyncio.wait_for(reader.read(), 4)
        dripping.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 2.5
    # an idle connection that never sends anything is closed too
    async with running_gateway(_config(openai_fake.base_url, keys=False)) as gw:
        reader, writer = await _open(gw)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()


@pytest.mark.parametrize("shape", ["huge", "many"])
async def test_oversized_heads_get_431(openai_fake: OpenAIFake, shape: str) -> None:
    async with running_gateway(_config(openai_fake.base_url, keys=False)) as gw:
        reader, writer = await _open(gw)
        head = b"GET /healthz HTTP/1.1\r\nhost: x\r\n"
        if shape == "huge":
            head += b"x-big: " + b"a" * (16 * 1024 * 1024) + b"\r\n\r\n"
        else:
            head += b"".join(b"x-h%d: v\r\n" % i for i in range(200)) + b"\r\n"
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        async with httpx.AsyncClient(base_url=gw.url) as http:
            assert (await http.get("/healthz")).status_code == 200
    assert answer.startswith(b"HTTP/1.1 431"), answer[:60]


async def test_a_huge_unauthenticated_request_is_refused_before_parsing(
    openai_fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[int] = []
    real = schemas.parse_json

    def spy(raw: bytes, *args: Any) -> dict[str, Any]:
        parsed.append(len(raw))
        return real(raw, *args)

    monkeypatch.setattr(schemas, "parse_json", spy)
    parts = [{"type": "text", "text": "x" * 20} for _ in range(100)]
    body = {"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": parts}] * 1000}
    raw = orjson.dumps(body)
    assert len(raw) > 3_000_000
    async with (
        running_gateway(_config(openai_fake.base_url, keys=True)) as gw,
        httpx.AsyncClient(base_url=gw.url) as http,
    ):
        refused = await http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
        assert parsed == [], "no key: nothing parsed"
        bounded = await http.post(
            "/v1/chat/completions",
            content=raw,
            headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
        )
    assert refused.status_code == 401
    assert bounded.status_code == 400 and bounded.json()["error"]["code"] == "json_too_complex"


def test_forwarded_addresses_are_believed_only_from_trusted_proxies() -> None:
    clients = ClientAddresses(["10.0.0.0/8", "127.0.0.1"])
    assert clients.resolve("203.0.113.5", "1.2.3.4") == "203.0.113.5"  # not a proxy: its header is ignored
    assert clients.resolve("127.0.0.1", "1.2.3.4") == "1.2.3.4"
    # the client wrote the left-most entries; the right-most untrusted hop is the real one
    assert clients.resolve("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9") == "198.51.100.7"
    assert clients.resolve("10.0.0.2", "not-an-ip") == "10.0.0.2"
    assert ClientAddresses([]).resolve("127.0.0.1", "1.2.3.4") == "127.0.0.1"


async def test_one_address_cannot_hold_unlimited_silent_connections(openai_fake: OpenAIFake) -> None:
    config = _config(openai_fake.base_url, keys=False, max_waiting_connections_per_address=20, trusted_proxies=[])
    async with running_gateway(config) as gw:
        conns = [await _open(gw) for _ in range(30)]
        reads = [asyncio.ensure_future(r.read()) for r, _ in conns]
        await asyncio.sleep(0.3)
        closed = sum(1 for read in reads if read.done())
        for _, writer in conns:
            writer.close()
        await asyncio.gather(*reads, return_exceptions=True)
        await asyncio.sleep(0.1)
        statuses = await _legit(gw, 10)  # the silent ones gone, the address is welcome again
    assert closed == 10, "connections past 20 that sent nothing are closed at once"
    assert statuses == [200] * 10


async def test_a_body_sent_one_byte_at_a_time_is_cut_at_the_deadline(openai_fake: OpenAIFake) -> None:
    """As found, a client sending one byte a second was kept for the whole test: the body deadline is
    for the whole body, not for each read."""
    async with running_gateway(_config(openai_fake.base_url, keys=False)) as gw:
        reader, writer = await _open(gw)
        started = time.monotonic()
        writer.write(_head("10.2.2.2").replace(b"100000", b"1000"))
        dripping = asyncio.create_task(_drip(writer, b" ", 40))  # always something new, never the whole body
        answer = await asyncio.wait_for(reader.read(), 5)
        dripping.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
    assert time.monotonic() - started < 3.0, "cut at the 1 s body deadline, not kept while bytes trickle in"


async def test_one_key_cannot_hold_more_than_its_share_of_requests_in_progress(openai_fake: OpenAIFake) -> None:
    other = "sk-other-client"
    config = _config(openai_fake.base_url, keys=True, max_in_flight_per_client=2).replace(
        "keys: [", f'keys: [{{name: other, sha256: "{hash_key(other)}"}}, ', 1
    )
    openai_fake.mode, openai_fake.delay = "slow", 1.0  # all six arrive while the first two are in progress
    try:
        async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:

            def send(key: str) -> Any:
                return http.post("/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"})

            greedy, [polite] = await asyncio.gather(
                asyncio.gather(*(send(KEY) for _ in range(6))), asyncio.gather(send(other))
            )
    finally:
        openai_fake.delay = 5.0
    statuses = sorted(a.status_code for a in greedy)
    assert statuses == [200, 200, 429, 429, 429, 429], statuses
    assert {a.json()["error"]["code"] for a in greedy if a.status_code == 429} == {"too_many_in_flight"}
    assert polite.status_code == 200, "another key is not held back by the greedy one"
