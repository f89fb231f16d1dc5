"""Run a real gateway (uvicorn, real sockets) on a free loopback port inside the test's event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from typing import Any

import uvicorn

from tokenomy.config import GatewayConfig, parse_config
from tokenomy.server.app import TokenomyApp
from tokenomy.server.run import create_app, http_protocol


@dataclass
class RunningGateway:
    """A gateway serving on ``url`` (``http://127.0.0.1:PORT``)."""

    url: str
    app: TokenomyApp

    @property
    def v1(self) -> str:
        """The OpenAI SDK ``base_url``."""
        return f"{self.url}/v1"

    async def flush_ledger(self) -> None:
        """Wait until every finished request is in the ledger store (or its spool)."""
        assert await asyncio.to_thread(self.app.gateway.ledger.flush), "the ledger did not flush in time"

    async def ledger_rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Flush the ledger, then the rows ``sql`` selects from its SQLite file."""
        await self.flush_ledger()
        with closing(sqlite3.connect(self.app.gateway.config.ledger.sqlite_path)) as conn:
            return conn.execute(sql).fetchall()


@asynccontextmanager
async def running_gateway(
    config: GatewayConfig | str, wait_ready: bool = True, shed_on_lag: bool = False
) -> AsyncIterator[RunningGateway]:
    """Start a gateway for ``config`` (a model or YAML text); stop it on exit.

    The event-loop-lag shedding is off unless asked for: the tests share the gateway's loop and
    a busy CI machine, so lag there says nothing about the gateway.
    """
    if isinstance(config, str):
        config = parse_config(config)
    update: dict[str, Any] = {} if shed_on_lag else {"shed_loop_lag_ms": 0.0}
    if os.environ.get("TOKENOMY_TEST_UPSTREAM_CLIENT"):  # run gateway tests on the other upstream client
        update["upstream_client"] = os.environ["TOKENOMY_TEST_UPSTREAM_CLIENT"]
    if update:
        config = config.model_copy(update={"server": config.server.model_copy(update=update)})
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="on",
            log_level="warning",
            access_log=False,
            http=http_protocol(config, app),  # the edge's deadlines, size limits and early shedding
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    if wait_ready:
        for _ in range(3000):
            if all(app.gateway.readiness().values()):
                break
            await asyncio.sleep(0.01)
    try:
        yield RunningGateway(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task
