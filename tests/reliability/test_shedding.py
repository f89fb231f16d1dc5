"""Shedding needs evidence of the gateway's own load, not just a late event loop.

As found: on a host where other processes used the CPU (load ~10 on 2 cores), the first single
request after ``/readyz`` said ready got 503 "The gateway is at capacity": the loop-lag signal
fired with one request in flight. Lateness caused by other processes (or a model loading) is
not overload; lateness with many requests of our own in progress is.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
SERVER = ", shed_loop_lag_ms: 20, shed_min_in_flight: 8"


@pytest.fixture
def cpu_hogs() -> Iterator[None]:
    """One busy process per core beside the gateway for the test's duration."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(2, os.cpu_count() or 2))]
    try:
        time.sleep(0.3)
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


class _Stutter:
    """Blocks the event loop for ``block_s`` every ``every_s`` (a model loading, a stalled host)."""

    def __init__(self, block_s: float, every_s: float) -> None:
        self.block_s, self.every_s = block_s, every_s
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        time.sleep(self.block_s)
        self._handle = asyncio.get_running_loop().call_later(self.every_s, self.start)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


@pytest.mark.parametrize("control", ["backoff", "little"])
async def test_a_lone_request_on_a_late_loop_is_served(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, cpu_hogs: None, control: str
) -> None:
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, f"{SERVER}, shed_control: {control}")
    async with running_gateway(config, shed_on_lag=True) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        stutter = _Stutter(0.08, 0.02)  # the loop runs ~4x late: far past the 20 ms limit
        stutter.start()
        try:
            await asyncio.sleep(0.5)
            assert gw.app.admission.lag.lag_s > 0.02, "the loop is late"
            statuses = [(await http.post("/v1/chat/completions", json=BODY)).status_code for _ in range(10)]
        finally:
            stutter.stop()
    assert statuses == [200] * 10, "one request at a time is never overload"


@pytest.mark.parametrize("control", ["backoff", "gradient", "little"])
async def test_a_late_loop_with_many_requests_of_our_own_sheds(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, control: str
) -> None:
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, f"{SERVER}, shed_control: {control}")
    openai_fake.mode, openai_fake.delay = "slow", 1.5
    try:
        async with (
            running_gateway(config, shed_on_lag=True) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=10) as http,
        ):
            held = [asyncio.create_task(http.post("/v1/chat/completions", json=BODY)) for _ in range(12)]
            for _ in range(500):  # until all 12 are in progress
                if gw.app.admission.in_flight >= 12:
                    break
                await asyncio.sleep(0.01)
            stutter = _Stutter(0.08, 0.02)
            stutter.start()
            try:
                await asyncio.sleep(0.4)
                late = [(await http.post("/v1/chat/completions", json=BODY)).status_code for _ in range(3)]
            finally:
                stutter.stop()
            first = await asyncio.gather(*held)
    finally:
        openai_fake.delay = 5.0
    assert [r.status_code for r in first] == [200] * 12
    assert 503 in late, "12 requests in progress and a late loop: new work is shed"
