"""Running a service process: listen, wait for SIGTERM/SIGINT, drain within a bound, exit."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

import tornado.httpserver
import tornado.web

from . import capacity, contract
from .config import HttpConfig
from .gcpolicy import LongLivedCollector
from .httpserver import GuardedHTTPServer, ensure_descriptors
from .metrics import Metrics
from .sdnotify import Readiness

log = logging.getLogger(__name__)


class ListenError(Exception):
    pass


def listen(
    app: tornado.web.Application, http: HttpConfig, metrics: Metrics | None = None
) -> GuardedHTTPServer:
    """Listen on http.host:http.port with the connection cap and timeouts of ``http``."""
    ensure_descriptors(
        http.max_connections,
        capacity.service_nofile(contract.section("connections"), http.max_connections),
    )
    server = GuardedHTTPServer(
        app,
        xheaders=http.xheaders,
        max_connections=http.max_connections,
        header_timeout_s=http.header_timeout_s,
        metrics=metrics,
    )
    try:
        server.listen(http.port, http.host)
    except (OSError, socket.gaierror) as exc:
        raise ListenError(
            f"cannot listen on {http.host}:{http.port}: {exc.strerror or exc}"
        ) from None
    return server


def collect_long_lived(server: GuardedHTTPServer, metrics: Metrics) -> LongLivedCollector:
    """The garbage collection policy of a process holding websockets (gcpolicy), started
    once its app and services are set up."""
    collector = LongLivedCollector(server.open_connections, lambda: server.closed, metrics)
    collector.start()
    return collector


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT. Installed before the service announces readiness,
    so a supervisor's SIGTERM right after READY=1 still drains instead of killing."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_until_signal(
    stop: asyncio.Event,
    servers: list[tornado.httpserver.HTTPServer],
    drain: Callable[[float], Awaitable[None]],
    timeout: float,
) -> None:
    """Wait for ``stop``, then stop accepting and drain for at most ``timeout``."""
    await stop.wait()
    log.info("shutting down", extra={"event": "shutdown"})
    Readiness.stopping()
    for server in servers:
        server.stop()
    try:
        await asyncio.wait_for(drain(timeout), timeout)
    except TimeoutError:
        log.warning("drain timed out", extra={"event": "shutdown.timeout"})
    for server in servers:
        await asyncio.wait_for(server.close_all_connections(), 1.0)
    log.info("stopped", extra={"event": "stopped"})
