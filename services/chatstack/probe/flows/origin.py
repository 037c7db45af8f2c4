"""origin: cross-site websocket hijacking is refused at the handshake with HTTP 403.

A page on another site, on another port of the same host, or a sandboxed page
(``Origin: null``) must not open a socket with the user's cookies; the page's own origin
and non-browser clients (no Origin header) are accepted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from ..client import Clients
from ..report import FlowFailed, Step
from ..target import Target

FOREIGN = "http://evil.example"


def other_port_origin(origin: str) -> str:
    """The same scheme and host as ``origin`` with a different port."""
    parts = urlsplit(origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    other = port + 1 if port < 65535 else port - 1
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{other}"


async def handshake_status(target: Target, origin: str) -> int:
    """HTTP status of a websocket handshake with ``origin`` (101 when it was accepted)."""
    request = HTTPRequest(
        target.ws_url,
        headers={"Origin": origin},
        connect_timeout=target.timeout,
        request_timeout=target.timeout,
    )
    try:
        conn = await websocket_connect(request)
    except HTTPClientError as exc:
        return exc.code
    except OSError as exc:
        raise FlowFailed(f"handshake with Origin {origin}: {exc}") from None
    conn.close()
    return 101


async def run(target: Target, step: Step) -> None:
    for origin in (FOREIGN, other_port_origin(target.origin), "null"):
        status = await handshake_status(target, origin)
        if status != 403:
            accepted = "accepted" if status == 101 else f"answered HTTP {status}"
            raise FlowFailed(
                f"handshake with foreign Origin {origin} was {accepted}, expected HTTP 403"
            )
        step(f"handshake with Origin {origin} refused with HTTP 403")
    async with Clients(target) as clients:
        await clients.connect("same-origin")
        step(f"handshake with Origin {target.origin} (same origin) accepted, welcome received")
        await clients.connect("no-origin", origin=None)
        step("handshake without Origin (not a browser) accepted, welcome received")
