"""A gateway for the evaluation's own use: the config's gateway, served in process on loopback.

Calls then go through the same pipeline as production (prices, token counts, retries, rate
limits); its ledger is switched off, so an evaluation's calls are not mixed into the traffic the
ledger records (their costs are in the evaluation's results), and so are its shadow rules.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn

from tokenomy.config.models import GatewayConfig


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C interrupts the evaluation, which then stops the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve_in_process(config: GatewayConfig, ready_timeout_s: float = 300.0) -> AsyncIterator[str]:
    """Serve ``config`` on a free loopback port; yields the base URL; stops on exit."""
    from tokenomy.server.run import create_app

    ledger = config.ledger.model_copy(update={"enabled": False})
    server_cfg = config.server.model_copy(update={"shed_loop_lag_ms": 0.0})  # our own loop is busy scoring
    config = config.model_copy(update={"ledger": ledger, "server": server_cfg, "shadow": ()})  # no copies of our calls
    app = create_app(config)
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the in-process gateway stopped while starting")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        deadline = asyncio.get_running_loop().time() + ready_timeout_s
        while not all(app.gateway.readiness().values()):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the in-process gateway's models did not load in time")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
