"""Running the gateway under uvicorn (uvloop event loop, httptools parser with the edge's limits).

The port is bound before anything else starts, so a taken port is a one-line error and exit
status 1; logging is set up once for Tokenomy's, uvicorn's and llama.cpp's lines.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Literal, cast

from tokenomy.config.models import GatewayConfig
from tokenomy.config.secrets import unset_secrets
from tokenomy.server import logging_setup
from tokenomy.server.listen import CannotListen, bind

if TYPE_CHECKING:
    from tokenomy.server.app import TokenomyApp
    from tokenomy.server.protocol import GuardedHttpToolsProtocol

# uvicorn, the gateway and the app are imported by the functions that serve: with --workers N the
# supervisor runs `run` only to start the worker processes, and holds none of them (~25 MB less).

log = logging.getLogger("tokenomy")


SWITCH_INTERVAL_S = float(os.environ.get("TOKENOMY_SWITCH_INTERVAL_S", "0.0002"))
EXIT_CANNOT_LISTEN = 1
EXIT_STARTUP_FAILED = 3


def create_app(config: GatewayConfig) -> TokenomyApp:
    """The ASGI app for ``config`` (providers start in the app's lifespan)."""
    from tokenomy.gateway import Gateway
    from tokenomy.server.app import TokenomyApp

    return TokenomyApp(Gateway(config))


def http_protocol(config: GatewayConfig, app: TokenomyApp | None = None) -> type[GuardedHttpToolsProtocol]:
    """uvicorn's ``http`` protocol with the edge's head deadline and size limits from ``config``,
    shedding early on ``app``'s overload signals."""
    from tokenomy.server.edge import ClientAddresses
    from tokenomy.server.protocol import EdgeLimits, GuardedHttpToolsProtocol

    limits = EdgeLimits()
    if app is not None:
        admission = app.admission
        limits.enter, limits.hold, limits.leave = admission.edge_enter, admission.edge_hold, admission.edge_leave
        limits.park = admission.edge_park if admission.slots is not None else None
    limits.max_waiting_per_address = config.server.max_waiting_connections_per_address
    limits.trusted = ClientAddresses(config.server.trusted_proxies).is_trusted
    limits.header_timeout_s = config.server.header_timeout_s
    limits.body_timeout_s = config.server.body_timeout_s
    limits.max_header_bytes = config.server.max_header_bytes
    limits.max_headers = config.server.max_headers
    return type("TokenomyHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def warn_unset_secrets(config: GatewayConfig) -> None:
    """Log a warning for every ``${VAR}`` reference whose variable is unset (and has no default)."""
    for path, env in unset_secrets(config):
        log.warning("%s refers to ${%s}, which is not set: what needs it will fail", path, env)


def run(
    config: GatewayConfig,
    host: str | None = None,
    port: int | None = None,
    log_format: str | None = None,
    workers: int = 1,
) -> None:
    """Serve until interrupted; exit 1 when the address cannot be bound, 3 when startup fails.

    ``workers`` > 1: several processes on one port (``server/workers.py``).
    """
    host = host or config.server.host
    port = config.server.port if port is None else port
    fmt: Literal["text", "json"] = "json" if (log_format or config.server.log_format) == "json" else "text"
    if fmt != config.server.log_format:  # workers read the format from their config
        config = config.model_copy(update={"server": config.server.model_copy(update={"log_format": fmt})})
    logging_setup.configure(config.server.log_level, fmt)
    warn_unset_secrets(config)
    try:
        sock = bind(host, port)
    except CannotListen as exc:
        log.error("%s", exc)
        sys.exit(EXIT_CANNOT_LISTEN)
    port = sock.getsockname()[1]
    model = config.models[0].name
    base = f"http://{host}:{port}"
    log.info("Tokenomy gateway on %s  (models: %s)", base, ", ".join(m.name for m in config.models))
    log.info(
        "try: curl %s/v1/chat/completions -H 'content-type: application/json' "
        '-d \'{"model": "%s", "messages": [{"role": "user", "content": "Hello!"}]}\'',
        base,
        model,
    )
    if workers > 1:
        from tokenomy.server.workers import run_workers

        sock.close()  # the address is free: each worker binds it with SO_REUSEPORT
        run_workers(config, host, port, workers)
        return
    serve_on(config, [sock], configure_logging=False)


def serve_on(config: GatewayConfig, sockets: list[socket.socket], configure_logging: bool = True) -> None:
    """Serve on already-bound sockets until SIGTERM/SIGINT (also a worker of ``serve --workers``)."""
    import uvicorn

    from tokenomy.server.shutdown import GracefulServer

    if configure_logging:
        logging_setup.configure(config.server.log_level, config.server.log_format)
    # Background threads (the ledger writer) share the GIL with the event loop; a short switch
    # interval bounds how long a request can wait for it (default 5 ms: a p99 spike).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    app = create_app(config)
    server = GracefulServer(
        uvicorn.Config(
            app,
            loop="uvloop",
            http=http_protocol(config, app),
            lifespan="on",
            access_log=False,  # Tokenomy writes its own access log (tokenomy.access)
            log_config=None,  # keep the handler set up above
            log_level=config.server.log_level,
            backlog=4096,
            timeout_keep_alive=30,
            # typed int, but handed to asyncio.timeout, which takes fractions of a second too
            timeout_graceful_shutdown=cast(int, config.server.shutdown_timeout_s),
            proxy_headers=False,
            server_header=False,
            date_header=False,
        ),
        on_deadline=app.gateway.shutdown_deadline_passed,
    )
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(EXIT_STARTUP_FAILED)
