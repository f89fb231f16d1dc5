"""Closed client connections leave nothing behind in the gateway (counted objects, not timings).

A connection that a client resets (rather than closing it cleanly) used to stay alive for
uvicorn's 30 s keep-alive timer: protocol, last request and buffers, ~9 KB each; a stream of
such clients grew the gateway by megabytes a second (``bench/overhead/growth.py --reset``).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct

import pytest
from tests.support.gateway import running_gateway

from tokenomy.server.protocol import GuardedHttpToolsProtocol

CONFIG = """
ledger: {enabled: false}
models:
  - name: m
    deployments:
      - {provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${NO_SUCH_KEY:-sk-x}", model: m}
"""
CONNECTIONS = 40


def _live_connections(port: int) -> int:
    """Connection objects of the gateway on ``port`` still alive (other tests' servers not counted)."""
    gc.collect()
    live = 0
    for obj in gc.get_objects():
        if isinstance(obj, GuardedHttpToolsProtocol) and obj.server is not None and obj.server[1] == port:
            live += 1
    return live


async def _one_connection(port: int, reset: bool, request: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if request:
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
        await reader.readexactly(length)
    if reset:  # SO_LINGER 0: the close sends a reset, and the gateway sees an error, not an orderly end
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize(
    ("reset", "request_first"),
    [(True, True), (False, True), (True, False)],
    ids=["reset after an answer", "clean close after an answer", "reset before any request"],
)
async def test_closed_connections_are_freed(reset: bool, request_first: bool) -> None:
    async with running_gateway(CONFIG) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        await _one_connection(port, reset=False, request=True)  # warm-up
        for _ in range(100):  # the server has seen the warm-up connection go
            if _live_connections(port) == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.gather(*(_one_connection(port, reset, request_first) for _ in range(CONNECTIONS)))
        left = CONNECTIONS
        for _ in range(200):  # each close reaches the server within a few loop turns
            left = _live_connections(port)
            if left == 0:
                break
            await asyncio.sleep(0.01)
        # a few may still be on their way; before the fix every one stayed for 30 s
        assert left <= 2, f"{left} of {CONNECTIONS} closed connections are still held by the gateway"
