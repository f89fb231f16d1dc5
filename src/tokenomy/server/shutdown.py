"""Graceful shutdown with a deadline.

On SIGTERM uvicorn stops accepting connections and waits for the requests in flight; after
``server.shutdown_timeout_s`` it cancels the rest. Just before that, the gateway is told the
deadline has passed, so each cancelled request is recorded in the ledger as cut short by the
shutdown (503, ``shutdown``) rather than as a client that went away. Then the app's lifespan
shutdown closes the providers and flushes the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import uvicorn

log = logging.getLogger("tokenomy.server")


class GracefulServer(uvicorn.Server):
    """uvicorn's server, calling ``on_deadline`` when the shutdown deadline passes."""

    def __init__(self, config: uvicorn.Config, on_deadline: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_deadline = on_deadline

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, let requests finish until the deadline, cancel the rest, then close the app."""
        timeout = self.config.timeout_graceful_shutdown
        timer = None
        if timeout is not None:
            log.info("shutting down: requests in flight have %.1f s to finish", timeout)
            timer = asyncio.get_running_loop().call_later(timeout, self._deadline)
        try:
            await super().shutdown(sockets)
        finally:
            if timer is not None:
                timer.cancel()

    def _deadline(self) -> None:
        if self.server_state.tasks:
            log.warning(
                "shutdown deadline reached: cancelling %d request(s) still running", len(self.server_state.tasks)
            )
        self._on_deadline()
