"""Running a service process: listen, wait for SIGTERM/SIGINT, drain within a bound, exit."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

import tornado.httpserver
import tornado.web

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


async def serve_until_signal(
    servers: list[tornado.httpserver.HTTPServer],
    drain: Callable[[float], Awaitable[None]],
    timeout: float,
) -> None:
    """Block until SIGTERM or SIGINT, then stop accepting and drain for at most ``timeout``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"event": "shutdown"})
    for server in servers:
        server.stop()
    try:
        await asyncio.wait_for(drain(timeout), timeout)
    except TimeoutError:
        log.warning("drain timed out", extra={"event": "shutdown.timeout"})
    for server in servers:
        await asyncio.wait_for(server.close_all_connections(), 1.0)
    log.info("stopped", extra={"event": "stopped"})
