"""Tiny pass-through proxies, one per server/client stack, for bench/stacks/run.sh.

Every app answers POST /v1/chat/completions by forwarding the request body to the fake upstream
(``STACK_UPSTREAM``, default http://127.0.0.1:8090/v1/chat/completions) and returning its body and
status. Anything else gets 404. Env knobs, read at import:

  STACK_CLIENT  aiohttp | httpx | httpx2 | raw | none   upstream HTTP client     [aiohttp]
                httpx2: pydantic's httpx fork (what the project's venv and openai SDK ship)
                raw: the minimal asyncio.Protocol + httptools keep-alive client below (what a
                hand-written upstream client costs); none: no upstream call, a fixed answer
                (the server's own cost, to split server and client CPU)
  STACK_JSON    0 | 1   1 = what a real gateway does with the payloads: orjson.loads the request,
                        read "model", orjson.dumps it again for the upstream; orjson.loads the
                        upstream response and orjson.dumps it back to the caller         [0]

Entry points:
  asgi_app                raw ASGI 3 callable (uvicorn, granian --interface asgi)
  rsgi_app                granian RSGI application (granian --interface rsgi)
  python apps.py aiohttp  aiohttp.web server (+ uvloop), like the anchors' minimal_proxy.py
  python apps.py aiohttp-lowlevel  aiohttp.web.Server (no router/application layer)

The upstream client is created lazily inside the serving event loop on the first request, so the
same module works under every server.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

UPSTREAM = os.environ.get("STACK_UPSTREAM", "http://127.0.0.1:8090/v1/chat/completions")
CLIENT = os.environ.get("STACK_CLIENT", "aiohttp")
JSON = os.environ.get("STACK_JSON", "0") == "1"
PATH = "/v1/chat/completions"
POOL = 1000
UP_HEADERS = {"Content-Type": "application/json"}

_client: Any = None
FIXED = (
    b'{"id":"chatcmpl-bench0001","object":"chat.completion","created":1700000000,"model":"fake-model",'
    b'"system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! '
    b'This is a fixed response from the fake upstream used for gateway benchmarking."},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":17,"total_tokens":36}}'
)


class _RawConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; httptools parses the responses."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.fut: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.transport.close()

    def on_body(self, b: bytes) -> None:
        self.body.append(b)

    def on_message_complete(self) -> None:
        fut, self.fut = self.fut, None
        data, self.body = b"".join(self.body), []
        if not self.parser.should_keep_alive():
            self.closed = True
            self.transport.close()
        if fut is not None and not fut.done():
            fut.set_result((self.parser.get_status_code(), data))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("upstream closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)


class RawClient:
    """A minimal POST-only keep-alive pool to one host (benchmark sketch: no retry on a stale
    connection, no timeouts, no chunked request bodies)."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.head = (
            f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\nContent-Length: "
        ).encode()
        self.idle: list[_RawConn] = []

    async def post(self, body: bytes) -> tuple[int, bytes]:
        conn = None
        while self.idle:
            c = self.idle.pop()
            if not c.closed:
                conn = c
                break
        if conn is None:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_RawConn, self.host, self.port)
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        conn.fut = fut
        conn.transport.write(b"".join((self.head, str(len(body)).encode(), b"\r\n\r\n", body)))
        result = await fut
        if not conn.closed:
            self.idle.append(conn)
        return result

    async def close(self) -> None:
        for c in self.idle:
            c.transport.close()


def _get_client() -> Any:
    global _client
    if _client is None:
        if CLIENT == "raw":
            _client = RawClient(UPSTREAM)
        elif CLIENT in ("httpx", "httpx2"):
            httpx = __import__(CLIENT)
            _client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL, keepalive_expiry=60),
                timeout=httpx.Timeout(600.0),
            )
        else:
            import aiohttp

            _client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL, keepalive_timeout=60, ttl_dns_cache=None),
                timeout=aiohttp.ClientTimeout(total=600),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
    return _client


async def forward(body: bytes) -> tuple[int, bytes]:
    """The whole 'pipeline': optional JSON round-trip, one upstream call, optional JSON round-trip."""
    if JSON:
        req = orjson.loads(body)
        _ = req["model"]  # route by model, as any gateway must
        body = orjson.dumps(req)
    if CLIENT == "none":
        status, data = 200, FIXED
    elif CLIENT == "raw":
        status, data = await _get_client().post(body)
    elif CLIENT in ("httpx", "httpx2"):
        client = _get_client()
        r = await client.post(UPSTREAM, content=body, headers=UP_HEADERS)
        status, data = r.status_code, r.content
    else:
        async with _get_client().post(UPSTREAM, data=body, headers=UP_HEADERS) as r:
            status, data = r.status, await r.read()
    if JSON:
        data = orjson.dumps(orjson.loads(data))
    return status, data


# ---------------------------------------------------------------- ASGI (uvicorn, granian asgi)

_CT = (b"content-type", b"application/json")


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if _client is not None:
                    await (_client.aclose() if CLIENT.startswith("httpx") else _client.close())
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] != PATH or scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    msg = await receive()
    body = msg.get("body", b"")
    if msg.get("more_body"):
        parts = [body]
        while msg.get("more_body"):
            msg = await receive()
            parts.append(msg.get("body", b""))
        body = b"".join(parts)
    status, data = await forward(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_CT, (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


# ---------------------------------------------------------------- RSGI (granian rsgi)

_RSGI_HEADERS = [("content-type", "application/json")]


class RSGIApp:
    def __rsgi_init__(self, loop: Any) -> None:
        pass

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.path != PATH or scope.method != "POST":
            proto.response_empty(404, [])
            return
        body = await proto()
        status, data = await forward(body)
        proto.response_bytes(status, _RSGI_HEADERS, data)


rsgi_app = RSGIApp()


# ---------------------------------------------------------------- aiohttp.web server


def run_aiohttp(port: int, lowlevel: bool) -> None:
    import uvloop
    from aiohttp import web

    async def chat(request: web.BaseRequest) -> web.StreamResponse:
        if lowlevel and (request.path != PATH or request.method != "POST"):
            return web.Response(status=404)
        status, data = await forward(await request.read())
        return web.Response(status=status, body=data, content_type="application/json")

    loop = uvloop.new_event_loop()
    if lowlevel:

        async def serve() -> None:
            server = web.Server(chat, access_log=None)
            runner = web.ServerRunner(server, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
            await site.start()
            print(f"aiohttp lowlevel on :{port}", flush=True)

        loop.run_until_complete(serve())
        loop.run_forever()
    else:
        app = web.Application()
        app.router.add_post(PATH, chat)
        web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=4096, loop=loop)


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "aiohttp"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8300
    run_aiohttp(port, lowlevel=kind == "aiohttp-lowlevel")
