"""A PostgreSQL outage under traffic: every request still answers, and none is lost from the ledger."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import openai
import psycopg
import pytest
from openai.types.chat import ChatCompletionMessageParam
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.postgres import PostgresServer

from tokenomy.ledger.process_ledger import ProcessLedger
from tokenomy.ledger.writer import LedgerWriter

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "count me"}]
DSN_ENV = "T_LEDGER_PG_DSN"


class Traffic:
    """Requests sent one after another in the background; remembers every id and status."""

    def __init__(self, gw: RunningGateway) -> None:
        self.client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        self.ids: list[str] = []
        self.statuses: Counter[int] = Counter()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def one(self, stream: bool) -> None:
        chat = self.client.chat.completions
        if stream:
            async with chat.with_streaming_response.create(model="fast", messages=MSG, stream=True) as response:
                async for _ in response.iter_lines():
                    pass
                status, request_id = response.status_code, response.headers["x-request-id"]
        else:
            raw = await chat.with_raw_response.create(model="fast", messages=MSG)
            raw.parse()
            status, request_id = raw.status_code, raw.headers["x-request-id"]
        self.statuses[status] += 1
        self.ids.append(request_id)

    async def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            await asyncio.gather(*(self.one(stream=(n + i) % 5 == 0) for i in range(4)))
            n += 4
            await asyncio.sleep(0.01)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def sent_at_least(self, n: int) -> bool:
        """Whether ``n`` requests have answered (re-raises the sender's error if it failed)."""
        assert self._task is not None
        if self._task.done():
            self._task.result()
        return len(self.ids) >= n

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


def ledger_ids(dsn: str) -> Counter[str]:
    with psycopg.connect(dsn, connect_timeout=3) as conn:
        return Counter({rid: n for rid, n in conn.execute("SELECT request_id, count(*) FROM requests GROUP BY 1")})


async def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_postgres_outage_loses_no_record(
    postgres_server: PostgresServer,
    openai_fake: OpenAIFake,
    anthropic_fake: AnthropicFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = postgres_server.create_database()
    monkeypatch.setenv(DSN_ENV, dsn)
    spool = tmp_path / "ledger.spool"
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url) + (
        f'ledger: {{store: postgres, dsn: "${{{DSN_ENV}}}", spool_path: "{spool}", '
        "flush_interval_ms: 20, retry_interval_s: 0.2, batch_size: 16}\n"
    )
    try:
        async with running_gateway(config) as gw:
            writer = gw.app.gateway.ledger
            assert isinstance(writer, LedgerWriter | ProcessLedger)
            traffic = Traffic(gw)
            traffic.start()
            try:
                await outage(gw, writer, traffic, postgres_server, dsn)
            finally:
                traffic.cancel()
    finally:
        postgres_server.start()  # whatever happened, leave the shared server up
        postgres_server.drop_database(dsn)


async def outage(
    gw: RunningGateway, writer: LedgerWriter | ProcessLedger, traffic: Traffic, server: PostgresServer, dsn: str
) -> None:
    """Traffic before, during and after a PostgreSQL stop; then every id must be stored once."""
    await wait_until(lambda: traffic.sent_at_least(40), 20, "traffic before the outage")
    await gw.flush_ledger()
    assert writer.store_up and not writer.spool.pending()

    await asyncio.to_thread(server.stop)
    before = len(traffic.ids)
    await wait_until(lambda: traffic.sent_at_least(before + 60), 20, "traffic during the outage")
    await gw.flush_ledger()
    assert not writer.store_up and writer.spool.pending(), "the outage did not reach the writer"

    await asyncio.to_thread(server.start)
    after = len(traffic.ids)
    await wait_until(lambda: traffic.sent_at_least(after + 40), 20, "traffic after the outage")
    await traffic.stop()
    await gw.flush_ledger()

    assert dict(traffic.statuses) == {200: len(traffic.ids)}
    sent = Counter(traffic.ids)
    assert max(sent.values()) == 1, "request ids must be unique"
    await wait_until(lambda: ledger_ids(dsn) == sent, 30, "every request in the ledger exactly once")
    await wait_until(lambda: not writer.spool.pending(), 10, "the spool to drain")
