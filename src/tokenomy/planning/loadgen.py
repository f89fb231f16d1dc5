"""The load generator: streamed requests to an OpenAI-compatible endpoint, timed per token.

Open loop (``rate``): arrivals follow a Poisson process at that rate (``inf``: all at once) and
are sent whether or not earlier ones finished, so a slow server cannot slow the offered load
(no coordinated omission). Closed loop (``concurrency``): that many workers each send the next
request as soon as their last one ends.

Timestamps come from ``time.perf_counter`` as each SSE chunk is read. The generator watches
itself: how late each open-loop send was against its schedule, how late a 5 ms ticker wakes up
(event-loop lag), and the share of one core its process used. When those show the client was the
bottleneck, the result says so (``client_saturated``).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from tokenomy.planning.workload import BenchRequest

TICK_S = 0.005
SATURATED_CPU = 0.85
"""Share of one core above which the generator reports itself saturated."""
SATURATED_LAG_MS = 2.0
"""Median event-loop lag (ms) above which the generator reports itself saturated."""
SATURATED_LATENESS_MS = 10.0
"""p90 lateness of open-loop sends against their schedule (ms) above which the generator reports itself saturated."""


@dataclass(slots=True)
class RequestResult:
    """One request's outcome; times are seconds on ``perf_counter`` (``token_times`` per content chunk)."""

    start: float
    end: float = 0.0
    error: str | None = None
    token_times: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0


@dataclass(slots=True)
class LoadResult:
    """A whole run: requests, wall time and the generator's own health."""

    results: list[RequestResult]
    duration_s: float
    send_lateness_ms: list[float]
    loop_lag_ms: list[float]
    cpu_share: float
    cpu_s: float = 0.0
    """CPU seconds the generator used (all its processes)."""

    @property
    def client_saturated(self) -> bool:
        """Whether the generator itself (not the server) limited the run."""
        lag, late = sorted(self.loop_lag_ms), sorted(self.send_lateness_ms)
        median = lag[len(lag) // 2] if lag else 0.0
        p90_late = late[int(0.9 * (len(late) - 1))] if late else 0.0
        return self.cpu_share >= SATURATED_CPU or median >= SATURATED_LAG_MS or p90_late >= SATURATED_LATENESS_MS


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send: ``base_url`` ends in ``/v1`` (as for the ``openai`` client)."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 600.0


_decode = msgspec.json.Decoder().decode


def _body(target: Target, req: BenchRequest) -> tuple[str, bytes]:
    body: dict[str, Any] = {**(req.extra or {}), "model": target.model, "stream": True}
    body["stream_options"] = {"include_usage": True}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
        body["ignore_eos"] = True  # vLLM: produce exactly max_tokens (others ignore the field)
    if req.messages is not None:
        body["messages"] = req.messages
        path = "/chat/completions"
    else:
        body["prompt"] = req.prompt
        path = "/completions"
    return target.base_url.rstrip("/") + path, msgspec.json.encode(body)


def _error_kind(status: int, text: str) -> str:
    try:
        err = _decode(text).get("error") or {}
        code = err.get("code") or err.get("type")
    except (msgspec.DecodeError, AttributeError):
        code = None
    return f"http {status}" + (f" {code}" if code else "")


async def send_one(session: aiohttp.ClientSession, target: Target, req: BenchRequest) -> RequestResult:
    """Send one streamed request and time it; failures are recorded, never raised."""
    url, payload = _body(target, req)
    result = RequestResult(start=time.perf_counter())
    clock = time.perf_counter
    try:
        async with session.post(url, data=payload) as resp:
            if resp.status != 200:
                result.error = _error_kind(resp.status, await resp.text())
                return result
            if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                await resp.read()
                result.error = "not streamed"
                return result
            done = False
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                now = clock()
                chunk = _decode(data)
                usage = chunk.get("usage")
                if usage:
                    result.output_tokens = int(usage.get("completion_tokens") or 0)
                    result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta")
                    text = delta.get("content") if delta is not None else choice.get("text")
                    if text:
                        result.token_times.append(now)
                        break
            if not done:
                result.error = "stream cut"
            elif not result.token_times:
                result.error = "no tokens"
            elif not result.output_tokens:
                result.output_tokens = len(result.token_times)  # no usage: one token per chunk
    except TimeoutError:
        result.error = "timeout"
    except aiohttp.ClientConnectorError:
        result.error = "connect"
    except aiohttp.ClientError as exc:
        result.error = f"connection: {type(exc).__name__}"
    except (msgspec.DecodeError, AttributeError, TypeError, ValueError):
        result.error = "bad stream"
    finally:
        result.end = clock()
    return result


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    # perf_counter, not loop.time(): uvloop's clock has millisecond steps
    clock = time.perf_counter
    while not stop.is_set():
        planned = clock() + TICK_S
        await asyncio.sleep(TICK_S)
        lags.append(max(0.0, (clock() - planned) * 1000))


def arrivals(rate: float, count: int, seed: int = 0) -> list[float]:
    """Poisson arrival offsets (seconds) for ``count`` requests at ``rate`` per second (``inf``: all zero)."""
    if math.isinf(rate):
        return [0.0] * count
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(count):
        out.append(t)
        t += rng.expovariate(rate)
    return out


async def run(
    target: Target,
    requests: list[BenchRequest],
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    duration_s: float | None = None,
    seed: int = 0,
    on_done: Callable[[RequestResult], None] | None = None,
) -> LoadResult:
    """Send ``requests`` open-loop at ``rate`` or closed-loop at ``concurrency``.

    ``duration_s``: stop sending new requests after that many seconds.
    """
    if (rate is None) == (concurrency is None):
        raise ValueError("give exactly one of rate and concurrency")
    headers = {"Content-Type": "application/json"}
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=target.timeout_s, sock_connect=10)
    lags: list[float] = []
    lateness: list[float] = []
    results: list[RequestResult] = []
    stop = asyncio.Event()

    def finish(result: RequestResult) -> None:
        results.append(result)
        if on_done is not None:
            on_done(result)

    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as session:
        ticker = asyncio.create_task(_ticker(lags, stop))
        cpu0, t0 = time.process_time(), time.perf_counter()
        deadline = t0 + duration_s if duration_s else math.inf

        async def one(req: BenchRequest) -> None:
            finish(await send_one(session, target, req))

        if rate is not None:
            tasks = []
            for req, offset in zip(requests, arrivals(rate, len(requests), seed), strict=True):
                due = t0 + offset
                if due >= deadline:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                lateness.append(max(0.0, (time.perf_counter() - due) * 1000))
                tasks.append(asyncio.create_task(one(req)))
            await asyncio.gather(*tasks)
        else:
            queue = iter(requests)

            async def worker() -> None:
                for req in queue:
                    if time.perf_counter() >= deadline:
                        return
                    await one(req)

            assert concurrency is not None
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        stop.set()
        await ticker
    return LoadResult(results, wall, lateness, lags, cpu / wall if wall > 0 else 0.0, cpu)
