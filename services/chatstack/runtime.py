"""Running a service process: listen, wait for SIGTERM/SIGINT, drain within a bound, exit."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

import tornado.httpserver
import tornado.web

from .sdnotify import Readiness

log = logging.getLogger(__name__)


class ListenError(Exception):
    pass


def listen(
    app: tornado.web.Application, host: str, port: int, xheaders: bool
) -> tornado.httpserver.HTTPServer:
    server = tornado.httpserver.HTTPServer(app, xheaders=xheaders)
    try:
        server.listen(port, host)
    except (OSError, socket.gaierror) as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server


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
