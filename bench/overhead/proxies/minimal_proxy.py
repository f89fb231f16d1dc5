"""Minimal OpenAI-compatible passthrough proxy: the "what plain Python can do" reference.

aiohttp server + one shared aiohttp ClientSession (keep-alive pool), uvloop if available.
Per request it parses the JSON body (to route by "model", as any gateway must), forwards
the original bytes to the mapped upstream, and relays the response (buffered for JSON,
streamed chunk by chunk for text/event-stream). No auth, no logging, no retries.

Usage: python minimal_proxy.py --port 8100 --route fake-model=http://127.0.0.1:8090 ...

Copied from shared/anchors/gateway/proxies/minimal_proxy.py (the gateway-overhead anchors); only two
long lines were wrapped for the project's line length.
"""

import argparse
import json

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def build_app(routes, pool_limit):
    app = web.Application()

    async def on_startup(app):
        app["session"] = ClientSession(
            connector=TCPConnector(limit=pool_limit, keepalive_timeout=60, ttl_dns_cache=None),
            timeout=ClientTimeout(total=600),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def on_cleanup(app):
        await app["session"].close()

    async def chat(request):
        raw = await request.read()
        try:
            model = json.loads(raw)["model"]
            base = routes[model]
        except (ValueError, KeyError, TypeError):
            err = {"error": {"message": "unknown model", "type": "invalid_request_error"}}
            return web.json_response(err, status=400)
        session = app["session"]
        async with session.post(
            base + "/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"}
        ) as up:
            ctype = up.headers.get("Content-Type", "application/json")
            if ctype.startswith("text/event-stream"):
                hdrs = {"Content-Type": ctype, "Cache-Control": "no-cache"}
                resp = web.StreamResponse(status=up.status, headers=hdrs)
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            body = await up.read()
            return web.Response(status=up.status, body=body, headers={"Content-Type": ctype})

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--route", action="append", default=[], help="model=base_url (repeatable)")
    ap.add_argument("--pool-limit", type=int, default=1000)
    ap.add_argument("--no-uvloop", action="store_true")
    a = ap.parse_args()
    routes = dict(r.split("=", 1) for r in a.route)
    loop_factory = None
    if uvloop is not None and not a.no_uvloop:
        loop_factory = uvloop.new_event_loop
    print(f"minimal_proxy on {a.host}:{a.port} uvloop={loop_factory is not None} routes={routes}", flush=True)
    web.run_app(
        build_app(routes, a.pool_limit),
        host=a.host,
        port=a.port,
        access_log=None,
        print=None,
        backlog=4096,
        loop=loop_factory() if loop_factory else None,
    )


if __name__ == "__main__":
    main()
