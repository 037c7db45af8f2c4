"""origin: cross-site websocket hijacking is refused at the handshake with HTTP 403.

A page on another site, on another port of the same host, or a sandboxed page
(``Origin: null``) must not open a socket with the user's cookies; the page's own origin
and non-browser clients (no Origin header) are accepted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..client import Clients
from ..http import handshake
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


async def run(target: Target, step: Step) -> None:
    for origin in (FOREIGN, other_port_origin(target.origin), "null"):
        status = (await handshake(target, origin)).code
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
