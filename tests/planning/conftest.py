"""A fake serving engine on its own thread and event loop, so CLI commands (which run their own loop) can call it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.fakes.engine import FakeEngine


class EngineThread:
    """Runs a :class:`FakeEngine` in a background thread until closed."""

    def __init__(self, **opts: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.engine = asyncio.run_coroutine_threadsafe(FakeEngine(**opts).start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.engine.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def engine() -> Iterator[FakeEngine]:
    """An engine with the reference timings: first token after 200 ms, then one every 20 ms."""
    runner = EngineThread()
    yield runner.engine
    runner.close()


@pytest.fixture(scope="module")
def non_streaming_engine() -> Iterator[FakeEngine]:
    """An engine that ignores ``stream: true`` and answers one JSON body."""
    runner = EngineThread(streams=False, first_token_s=0.0, token_interval_s=0.0)
    yield runner.engine
    runner.close()
