"""Running the gateway under uvicorn (uvloop event loop, httptools parser with the edge's limits,
no access log)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from tokenomy.config.models import GatewayConfig
from tokenomy.gateway import Gateway
from tokenomy.server.app import TokenomyApp
from tokenomy.server.edge import ClientAddresses
from tokenomy.server.protocol import EdgeLimits, GuardedHttpToolsProtocol

log = logging.getLogger("tokenomy")


SWITCH_INTERVAL_S = float(os.environ.get("TOKENOMY_SWITCH_INTERVAL_S", "0.0002"))


def create_app(config: GatewayConfig) -> TokenomyApp:
    """The ASGI app for ``config`` (providers start in the app's lifespan)."""
    return TokenomyApp(Gateway(config))


def http_protocol(config: GatewayConfig, app: TokenomyApp | None = None) -> type[GuardedHttpToolsProtocol]:
    """uvicorn's ``http`` protocol with the edge's head deadline and size limits from ``config``,
    shedding early on ``app``'s overload signals."""
    limits = EdgeLimits()
    limits.shed = app.admission.shed_early if app is not None else None
    limits.max_waiting_per_address = config.server.max_waiting_connections_per_address
    limits.trusted = ClientAddresses(config.server.trusted_proxies).is_trusted
    limits.header_timeout_s = config.server.header_timeout_s
    limits.body_timeout_s = config.server.body_timeout_s
    limits.max_header_bytes = config.server.max_header_bytes
    limits.max_headers = config.server.max_headers
    return type("TokenomyHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def run(config: GatewayConfig, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted."""
    host = host or config.server.host
    port = config.server.port if port is None else port
    logging.basicConfig(level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    app = create_app(config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=http_protocol(config, app),
        lifespan="on",
        access_log=False,
        log_level=config.server.log_level,
        backlog=4096,
        timeout_keep_alive=30,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
