"""Running the gateway under uvicorn (uvloop event loop, httptools parser, no access log)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

import uvicorn

from tokenomy.config.models import GatewayConfig
from tokenomy.gateway import Gateway
from tokenomy.server.app import TokenomyApp

log = logging.getLogger("tokenomy")


SWITCH_INTERVAL_S = float(os.environ.get("TOKENOMY_SWITCH_INTERVAL_S", "0.0002"))


def create_app(config: GatewayConfig) -> TokenomyApp:
    """The ASGI app for ``config`` (providers start in the app's lifespan)."""
    return TokenomyApp(Gateway(config))


# How uvicorn serves the gateway, whether in one process or in each worker of `serve --workers`.
UVICORN_SETTINGS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "lifespan": "on",
    "access_log": False,
    "backlog": 4096,
    "timeout_keep_alive": 30,
    "proxy_headers": False,
    "server_header": False,
    "date_header": False,
}


def run(config: GatewayConfig, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    """Serve until interrupted (``workers`` > 1: several processes, see ``server/workers.py``)."""
    host = host or config.server.host
    port = config.server.port if port is None else port
    logging.basicConfig(level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers > 1:
        from tokenomy.server.workers import run_workers

        run_workers(config, host, port, workers)
        return
    model = config.models[0].name
    base = f"http://{host}:{port}"
    log.info("Tokenomy gateway on %s  (models: %s)", base, ", ".join(m.name for m in config.models))
    log.info(
        "try: curl %s/v1/chat/completions -H 'content-type: application/json' "
        '-d \'{"model": "%s", "messages": [{"role": "user", "content": "Hello!"}]}\'',
        base,
        model,
    )
    # Background threads (the ledger writer) share the GIL with the event loop; a short switch
    # interval bounds how long a request can wait for it (default 5 ms: a p99 spike).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.run(create_app(config), host=host, port=port, log_level=config.server.log_level, **UVICORN_SETTINGS)


def serve_on(config: GatewayConfig, sockets: list[socket.socket]) -> None:
    """Serve on already-bound sockets (a worker of ``serve --workers``) until SIGTERM/SIGINT."""
    logging.basicConfig(level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    settings = uvicorn.Config(create_app(config), log_level=config.server.log_level, **UVICORN_SETTINGS)
    uvicorn.Server(settings).run(sockets=sockets)
