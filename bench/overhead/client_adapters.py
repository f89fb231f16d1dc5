"""Three upstream HTTP clients behind one small interface, for ``clients.py`` (benchmark only).

Each: ``await start()``, ``await post(url, body, headers) -> (status, body)``, ``await close()``;
keep-alive pooling, up to ``connections`` connections. Runs in the clients' own virtual environment
(``clients.py`` makes it), not the project's: pycurl and pyreqwest are not project dependencies.
"""

from __future__ import annotations

import asyncio
from typing import Any


class AiohttpClient:
    """aiohttp as the gateway's ``HttpPool`` uses it (``providers/http_pool.py``): one session,
    the same connector settings, no decompression, no automatic headers, a timeout object."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.session: Any = None
        self.timeout: Any = None

    async def start(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self.connections, limit_per_host=self.connections, ttl_dns_cache=300, keepalive_timeout=30
        )
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")
        )
        self.timeout = aiohttp.ClientTimeout(total=600, sock_connect=10)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        resp = await self.session.post(url, data=body, headers=headers, timeout=self.timeout)
        try:
            return resp.status, await resp.read()
        finally:
            resp.release()

    async def close(self) -> None:
        await self.session.close()


class PycurlClient:
    """libcurl's multi interface driven by the event loop: libcurl says which sockets to watch
    (``M_SOCKETFUNCTION`` -> ``add_reader``/``add_writer``) and when to wake it
    (``M_TIMERFUNCTION`` -> ``call_later``); easy handles are reused (keep-alive, pooled by libcurl)."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.pending: dict[Any, tuple[asyncio.Future[None], list[bytes]]] = {}
        self.free: list[Any] = []
        self.timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        import pycurl

        self.pycurl = pycurl
        self.loop = asyncio.get_running_loop()
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._wake_in)
        self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, self.connections)
        self.multi.setopt(pycurl.M_MAXCONNECTS, self.connections)

    def _watch(self, what: int, fd: int, multi: Any, data: Any) -> None:
        p, loop = self.pycurl, self.loop
        loop.remove_reader(fd)
        loop.remove_writer(fd)
        if what == p.POLL_REMOVE:
            return
        if what & p.POLL_IN:
            loop.add_reader(fd, self._act, fd, p.CSELECT_IN)
        if what & p.POLL_OUT:
            loop.add_writer(fd, self._act, fd, p.CSELECT_OUT)

    def _wake_in(self, ms: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if ms >= 0:
            self.timer = self.loop.call_later(ms / 1000, self._act, self.pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        if fd == self.pycurl.SOCKET_TIMEOUT:
            self.timer = None
        while self.multi.socket_action(fd, events)[0] == self.pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, ok, failed = self.multi.info_read()
            for handle in ok:
                self.pending.pop(handle)[0].set_result(None)
            for handle, errno, message in failed:
                self.pending.pop(handle)[0].set_exception(OSError(errno, message))
            if not queued:
                break

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        p = self.pycurl
        handle = self.free.pop() if self.free else p.Curl()
        chunks: list[bytes] = []
        handle.setopt(p.URL, url)
        handle.setopt(p.POSTFIELDS, body)
        handle.setopt(p.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()] + ["Expect:"])
        handle.setopt(p.WRITEFUNCTION, chunks.append)
        done: asyncio.Future[None] = self.loop.create_future()
        self.pending[handle] = (done, chunks)
        self.multi.add_handle(handle)
        try:
            await done
            return handle.getinfo(p.RESPONSE_CODE), b"".join(chunks)
        finally:
            self.pending.pop(handle, None)
            self.multi.remove_handle(handle)
            self.free.append(handle)

    async def close(self) -> None:
        for handle in self.free:
            handle.close()
        self.multi.close()


class PyreqwestClient:
    """pyreqwest (Rust reqwest under Python bindings): one client with a bounded pool."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.client: Any = None

    async def start(self) -> None:
        from pyreqwest.client import ClientBuilder

        self.client = ClientBuilder().max_connections(self.connections).build()
        await self.client.__aenter__()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        resp = await self.client.post(url).body_bytes(body).headers(headers).build().send()
        return resp.status, await resp.bytes()

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)


CLIENTS: dict[str, type[AiohttpClient] | type[PycurlClient] | type[PyreqwestClient]] = {
    "aiohttp": AiohttpClient,
    "pycurl": PycurlClient,
    "pyreqwest": PyreqwestClient,
}
