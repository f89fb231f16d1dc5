"""Load shedding: a full gateway answers 503 with Retry-After at once instead of queueing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.server.overload import GradientDetector, LoopLagMonitor, OverloadDetector
from tokenomy.telemetry import metrics

BODY = b'{"model": "fast", "messages": [{"role": "user", "content": "hi"}]}'


def test_lag_monitor_trips_and_recovers() -> None:
    monitor = LoopLagMonitor(limit_s=0.05, smoothing=0.5)
    for _ in range(5):
        monitor.observe(0.2)
    assert monitor.overloaded
    for _ in range(10):
        monitor.observe(0.0)
    assert not monitor.overloaded


async def test_full_gateway_sheds_quickly(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> None:
    openai_fake.mode = "slow"
    openai_fake.delay = 2.0
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, extra_server=", max_in_flight: 2")
    async with running_gateway(config) as gw, aiohttp.ClientSession() as http:

        async def call() -> tuple[int, float, str | None]:
            started = time.perf_counter()
            async with http.post(
                f"{gw.v1}/chat/completions", data=BODY, headers={"content-type": "application/json"}
            ) as resp:
                await resp.read()
                return resp.status, time.perf_counter() - started, resp.headers.get("retry-after")

        results = await asyncio.gather(*(call() for _ in range(6)))
        async with http.get(f"{gw.url}/healthz") as health:
            assert health.status == 200
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 200, 503, 503, 503, 503]
    for status, elapsed, retry_after in results:
        if status == 503:
            assert retry_after == "1"
            assert elapsed < 1.5, "shed requests must not wait for the slow ones"


def test_limit_backs_off_on_own_lateness_and_grows_back() -> None:
    lag = LoopLagMonitor(limit_s=0.02)
    detector = OverloadDetector(lag, 0.02, min_in_flight=8, ceiling=1000, window_s=0.05)
    detector.observe(0.2)  # a standing queue: even the quickest request of the window waited 200 ms
    detector.tick(1.0, active=100)
    assert detector.limit == 80, "late with 100 in progress: the limit drops to 0.8 x that"
    detector.observe(0.2)
    detector.tick(1.01, active=100)
    assert detector.limit == 80, "one move per window"
    for step in range(20):
        detector.observe(0.2)
        detector.tick(1.1 + step * 0.05, active=100)
    assert detector.limit == 8, "never below shed_min_in_flight"
    assert detector.overloaded(8) and not detector.overloaded(7)
    detector.observe(0.001)
    detector.tick(3.0, active=8)
    assert detector.limit == 10, "on time: it grows"
    for step in range(40):
        detector.tick(4.0 + step * 0.05, active=2)
    assert detector.limit == 1000, "back up to the ceiling (server.max_in_flight) once the overload is over"
    detector.observe(0.2)
    detector.tick(6.0, active=50)
    assert detector.limit == 40, "the next backoff starts from the calls in progress, not from the ceiling"


def test_lateness_with_few_requests_of_our_own_moves_nothing() -> None:
    lag = LoopLagMonitor(limit_s=0.02)
    detector = OverloadDetector(lag, 0.02, min_in_flight=8, ceiling=1000)
    lag.observe(0.5)  # the loop itself is late (a model loading, say)
    for step in range(10):
        detector.tick(1.0 + step, active=3)
    assert detector.limit == 1000


async def _raw(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:] if b": " in line)
    body = await reader.readexactly(int(headers[b"content-length"]))
    return lines[0], headers, body


async def test_shed_at_the_edge_before_the_body_and_the_connection_stays(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake
) -> None:
    """With the limit reached, a model call is answered 503 from its head alone (its body has not
    arrived: the app never saw it), the body is then dropped as it comes, and the same kept-alive
    connection serves the next request."""
    openai_fake.mode, openai_fake.delay = "slow", 2.0
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, extra_server=", max_in_flight: 2")
    try:
        async with running_gateway(config) as gw, aiohttp.ClientSession() as http:
            held = [
                asyncio.create_task(
                    http.post(f"{gw.v1}/chat/completions", data=BODY, headers={"content-type": "application/json"})
                )
                for _ in range(2)
            ]
            for _ in range(500):
                if gw.app.admission.active >= 2:
                    break
                await asyncio.sleep(0.01)
            host, port = gw.url.removeprefix("http://").split(":")
            reader, writer = await _raw(host, int(port))
            head = (
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(BODY)
            )
            writer.write(head + BODY[:10])  # the head and the body's first bytes only
            status, headers, body = await _response(reader)
            assert status == b"HTTP/1.1 503 Service Unavailable"
            assert headers[b"retry-after"] == b"1" and b"connection" not in headers
            assert b"server_overloaded" in body
            writer.write(BODY[10:])  # the rest of the body: read and dropped
            writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            status, headers, body = await _response(reader)
            assert status.startswith(b"HTTP/1.1 529"), "Anthropic's overloaded status, on the same connection"
            assert b"overloaded_error" in body
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            status, _, _ = await _response(reader)
            assert status == b"HTTP/1.1 200 OK", "what is not a model call is never shed"
            # pipelined: a model call parsed while the request before it is still being answered
            # is shed in its turn (it gets a scope of its own for that), after the first answer
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n" + head + BODY)
            status, _, _ = await _response(reader)
            assert status == b"HTTP/1.1 200 OK"
            status, headers, body = await _response(reader)
            assert status == b"HTTP/1.1 503 Service Unavailable" and b"server_overloaded" in body
            writer.close()
            reader, writer = await _raw(host, int(port))  # a client that closes after each request
            writer.write(head.replace(b"host: x", b"host: x\r\nconnection: close") + BODY)
            status, headers, _ = await _response(reader)
            assert status == b"HTTP/1.1 503 Service Unavailable" and headers[b"connection"] == b"close"
            assert await asyncio.wait_for(reader.read(), 5) == b"", "then the gateway closes, nothing else sent"
            writer.close()
            first = [await (await task).read() for task in held]
            assert all(b"chat.completion" in answer for answer in first)
            assert gw.app.admission.active == 0
    finally:
        openai_fake.delay = 5.0


async def test_admitted_requests_do_not_queue_behind_a_backlog(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake
) -> None:
    """A burst of 40 against room for 4: exactly 4 are admitted and each starts at once (its queue
    delay, head to app, is small: nothing waited in front of it); the other 36 are shed."""
    openai_fake.mode, openai_fake.delay = "slow", 1.0
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, extra_server=", max_in_flight: 4")
    delays: list[float] = []
    try:
        async with running_gateway(config) as gw, aiohttp.ClientSession() as http:
            overload = gw.app.admission.overload
            observe = overload.observe

            def recording(delay_s: float) -> None:
                delays.append(delay_s)
                observe(delay_s)

            overload.observe = recording  # type: ignore[method-assign]

            async def call() -> int:
                async with http.post(
                    f"{gw.v1}/chat/completions", data=BODY, headers={"content-type": "application/json"}
                ) as resp:
                    await resp.read()
                    return resp.status

            statuses = await asyncio.gather(*(call() for _ in range(40)))
    finally:
        openai_fake.delay = 5.0
    assert sorted(statuses) == [200] * 4 + [503] * 36
    assert len(delays) == 4, "shed requests never reached the app"
    assert max(delays) < 0.5, "an admitted request started without waiting out another's upstream call"


def test_waited_reads_how_long_a_request_sat_in_the_kernel() -> None:
    """``waited`` is the age of the request's bytes in the kernel when the gateway reads them: here
    a new connection's first request, left 500 ms in the listen queue before it is accepted."""
    import socket

    from tokenomy.server.protocol import GuardedHttpToolsProtocol

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            time.sleep(0.5)
            accepted, _ = server.accept()
            with accepted:

                class Transport:
                    def get_extra_info(self, name: str) -> object:
                        return accepted if name == "socket" else None

                protocol = GuardedHttpToolsProtocol.__new__(GuardedHttpToolsProtocol)
                protocol.transport = Transport()  # type: ignore[assignment]
                waited = protocol.waited()
                client.sendall(b"POST")  # the next request's first bytes: just arrived
                time.sleep(0.02)
                fresh = protocol.waited()
    assert 0.45 <= waited < 3.0, waited
    assert fresh < 0.3, fresh


async def test_requests_that_waited_too_long_unread_are_shed_while_overloaded(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake
) -> None:
    """While the in-progress limit is lowered (the gateway found itself late), a model call whose
    bytes waited longer than ``shed_waited_ms`` in the kernel before the gateway read them -- here
    600 ms, the event loop held -- is answered 503 from its head, and its kept-alive connection then
    serves a fresh request; the same wait with the limit at its ceiling (a lone request on a host
    that was busy elsewhere) is served."""
    openai_fake.mode = "fast"
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, extra_server=", shed_waited_ms: 250")
    async with running_gateway(config) as gw:
        overload = gw.app.admission.overload
        host, port = gw.url.removeprefix("http://").split(":")
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
        )

        async def after_a_wait(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> bytes:
            writer.write(request)  # sent at once: the loop (the gateway's too) is then held 600 ms
            time.sleep(0.6)  # noqa: ASYNC251 -- holding the loop (the gateway's) is the point
            status, _, _ = await _response(reader)
            return status

        overload.limit = overload.ceiling
        reader, writer = await _raw(host, int(port))
        assert await after_a_wait(writer, reader) == b"HTTP/1.1 200 OK", "not overloaded: a late request is served"
        writer.close()

        overload.limit = overload.ceiling // 2  # as the controller leaves it after a late window
        refused = metrics.EDGE_REFUSALS.labels("waited")
        before = refused._value.get()
        reader, writer = await _raw(host, int(port))  # a new connection: the wait includes the listen queue
        status = await after_a_wait(writer, reader)
        assert status == b"HTTP/1.1 503 Service Unavailable", "it waited 600 ms unread: shed"
        writer.write(request)
        status, _, body = await _response(reader)
        assert status == b"HTTP/1.1 200 OK" and b"chat.completion" in body, "a fresh request on the same connection"
        status = await after_a_wait(writer, reader)
        assert status == b"HTTP/1.1 503 Service Unavailable", "a kept-alive connection's request that waited: shed"
        writer.close()
        assert refused._value.get() - before == 2, "each counted, under its own reason"
        assert gw.app.admission.active == 0


# -- the gradient controller (server.shed_control: gradient), fed lag sequences --------------------------


def _gradient(target_s: float = 0.02, ceiling: int = 2048) -> tuple[LoopLagMonitor, GradientDetector]:
    lag = LoopLagMonitor(limit_s=target_s, smoothing=1.0)  # no smoothing: each sample is the lag
    return lag, GradientDetector(lag, target_s, min_in_flight=8, ceiling=ceiling, window_s=0.05)


def test_gradient_drops_in_proportion_to_lateness_and_at_most_by_half() -> None:
    lag, detector = _gradient()
    lag.observe(0.04)  # twice the target
    detector.tick(1.0, active=100)
    assert detector.limit == 50, "twice the target: half of the calls in progress"
    lag.observe(0.025)
    detector.tick(1.05, active=50)
    assert detector.limit == 40, "a quarter over the target: 0.8x"
    lag.observe(0.4)
    detector.tick(1.1, active=40)
    assert detector.limit == 20, "twenty times the target: never more than half in one window"
    lag.observe(0.4)
    detector.tick(1.11, active=20)
    assert detector.limit == 20, "one move per window"


def test_gradient_never_goes_below_what_the_gateway_completes_in_the_target() -> None:
    """A shed flood keeps the loop 50 ms late whatever the limit; the gateway still answers 3,000
    calls a second. The limit settles at 3,000 x 20 ms = 60 (Little's law), not at the minimum:
    lower would shed calls the core could have answered in time."""
    lag, detector = _gradient()
    now = 1.0
    for _ in range(200):  # 10 s of 50 ms windows
        lag.observe(0.05)
        detector.completed += 150  # 3,000 a second
        detector.tick(now, active=detector.limit)
        now += 0.05
    assert detector.floor == 60
    assert detector.limit == 60


def _plant(
    detector: GradientDetector | OverloadDetector, lag: LoopLagMonitor, seconds: float
) -> list[tuple[int, float]]:
    """A saturated gateway: every slot of the limit is taken; the core answers 3,000 calls a second
    (5 ms each at best), so past 15 in progress calls queue and the loop lags by half their wait.
    Returns (limit, lag) per 50 ms window."""
    capacity, service = 3000.0, 0.005
    now, trace = 1.0, []
    for _ in range(int(seconds / 0.05)):
        in_progress = detector.limit
        throughput = min(capacity, in_progress / service)
        late = max(0.0, in_progress / capacity - service) / 2
        for _ in range(5):  # the monitor samples every 10 ms
            lag.observe(late)
        detector.completed += int(throughput * 0.05)
        detector.tick(now, active=in_progress)
        trace.append((detector.limit, late))
        now += 0.05
    return trace


def test_gradient_holds_the_lag_near_its_target_without_collapsing() -> None:
    """From the ceiling (2,048) into a saturated core: within a second the limit comes down to
    where the loop's lag is near the target (135 in progress here) and stays there: it neither
    collapses toward the minimum nor swings back to the ceiling."""
    lag, detector = _gradient()
    trace = _plant(detector, lag, seconds=10)
    settled = trace[40:]  # after 2 s
    limits = [limit for limit, _ in settled]
    lags = [late for _, late in settled]
    assert min(limits) >= 115 and max(limits) <= 160, (min(limits), max(limits))
    assert 0.015 <= sum(lags) / len(lags) <= 0.025, sum(lags) / len(lags)
    assert max(lags) <= 0.03, "never 50% over the target once settled"
    assert all(limit >= 15 for limit, _ in trace), "never so low that the core idles (15 keep it busy)"


def test_gradient_returns_to_the_ceiling_once_the_overload_is_over() -> None:
    lag, detector = _gradient(ceiling=1000)
    lag.observe(0.04)
    detector.tick(1.0, active=100)
    assert detector.limit == 50
    lag.observe(0.0)
    detector.tick(1.05, active=50)
    assert detector.limit == 57, "on time with the limit in use: + sqrt(limit)"
    now = 1.1
    for _ in range(40):
        detector.tick(now, active=3)  # on time, the limit unused
        now += 0.05
    assert detector.limit == 1000


def test_gradient_ignores_lateness_with_few_requests_of_its_own() -> None:
    lag, detector = _gradient(ceiling=1000)
    lag.observe(0.5)  # the loop is late (a model loading, another process)
    for step in range(10):
        detector.tick(1.0 + step, active=3)
    assert detector.limit == 1000


async def test_a_request_shed_at_its_head_gets_no_scope_and_keeps_no_headers() -> None:
    """The shed verdict comes with the first header: a request to be shed is answered from
    pre-built bytes without uvicorn's ASGI scope or its headers list (their cost, per shed, is what
    a flood multiplies); an admitted one gets both, as uvicorn builds them."""
    import uvicorn
    from uvicorn.server import ServerState

    from tokenomy.server.protocol import EdgeLimits, GuardedHttpToolsProtocol

    class Transport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.out = b""

        def get_extra_info(self, name: str, default: object = None) -> object:
            return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(name, default)

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.out += bytes(data)

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

    async def app(scope: object, receive: object, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    verdicts: list[bytes] = []
    limits = EdgeLimits()
    limits.enter = lambda url, waited: verdicts.append(url) or (-1 if url.startswith(b"/v1/") else 0)
    protocol = type("P", (GuardedHttpToolsProtocol,), {"limits": limits})
    config = uvicorn.Config(app, loop="none", http=protocol, access_log=False, log_config=None)
    config.load()
    proto = protocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = Transport()
    proto.connection_made(transport)
    proto.data_received(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-a: 1\r\ncontent-length: 2\r\n\r\n{}")
    assert transport.out.startswith(b"HTTP/1.1 503 ")
    assert proto.scope is None and proto.headers == [], "no scope, no headers kept"
    proto.data_received(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n\r\n")
    assert proto.scope["path"] == "/healthz" and proto.scope["headers"] == [(b"host", b"x"), (b"x-a", b"1")]
    assert verdicts == [b"/v1/chat/completions", b"/healthz"], "one verdict per request"
    await asyncio.sleep(0.01)  # the admitted request's task answers
    proto.connection_lost(None)
